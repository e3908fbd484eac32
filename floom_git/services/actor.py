"""Who is acting: the identity every service call carries, and the git author it commits as."""

from __future__ import annotations

from dataclasses import dataclass

from floom_git.storage.git_types import Signature
from floom_git.storage.repo import signature

ROLES = ("viewer", "member", "admin", "owner")


@dataclass(frozen=True)
class Actor:
    user_id: str
    name: str
    email: str
    role: str = "member"
    auth_method: str = "secret"

    def can(self, needed: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)

    @property
    def signature(self) -> Signature:
        return signature(self.name, self.email)


SYSTEM = Actor("floom", "floom", "floom@floom.local", role="owner", auth_method="system")

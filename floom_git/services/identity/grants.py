"""What a credential may hand on. Every credential minted from another one (a personal token, a
refreshed session, the session of a magic link, the CLI token of a device approval, a workspace
token) gets a role cap, an expiry and a workspace binding no stronger than its parent's;
`derive` is the one place that decides it."""

from __future__ import annotations

from dataclasses import dataclass

from floom_git.errors import Forbidden
from floom_git.services.actor import ROLES


@dataclass(frozen=True)
class Grant:
    """The limits a credential carries (and passes on to what it mints)."""

    role_cap: str | None = None  # None: the holder's own role, uncapped
    expires_at: float | None = None  # None: never (a password sign-in: the user's own authority)
    workspace_id: str | None = None  # internal id of the one workspace it may act in

    def capped(self, role: str | None) -> Grant:
        """This grant with its cap lowered to `role` (None leaves it as it is)."""
        return Grant(lowest(self.role_cap, role), self.expires_at, self.workspace_id)


UNLIMITED = Grant()  # a password sign-in: the user's own authority


def lowest(a: str | None, b: str | None) -> str | None:
    """The lower of two role caps; None is no cap."""
    if a is None or b is None:
        return a if b is None else b
    return a if ROLES.index(a) <= ROLES.index(b) else b


def earliest(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def derive(parent: Grant, *, role: str | None = None, expires_at: float | None = None) -> Grant:
    """The grant of a credential minted by the holder of `parent`: the `role` and `expires_at`
    asked for, never above the parent's (an expiry is shortened to the parent's, a role above
    the parent's cap is refused with Forbidden), bound to the parent's workspace if it is bound.
    """
    if role is not None and lowest(role, parent.role_cap) != role:
        raise Forbidden(f"role: a credential capped at {parent.role_cap} cannot mint a {role} "
                        "credential")
    return Grant(role_cap=role if role is not None else parent.role_cap,
                 expires_at=earliest(parent.expires_at, expires_at),
                 workspace_id=parent.workspace_id)

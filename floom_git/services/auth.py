"""Deciding who a request is: the shared secret for now (x-floom-secret), in one small table
that fails closed. The server-generated secret lives in system/, never in a workspace."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from floom_git.errors import Forbidden, Unauthenticated
from floom_git.services.actor import Actor

SECRET_FILE = "shared-secret"


def load_or_create_secret(system_dir: Path) -> str:
    """The shared secret kept in system/ (mode 600), created on first start."""
    system_dir.mkdir(parents=True, exist_ok=True)
    path = system_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    value = "floom_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


class Authenticator:
    def __init__(self, secret: str, shared_secret_role: str = "member") -> None:
        if not secret:
            raise ValueError("a shared secret is required")
        self._secret = secret.encode()
        role = shared_secret_role if shared_secret_role in ("member", "admin") else "member"
        self._actor = Actor("local-user", "local-user", "local-user@floom.local", role=role,
                            auth_method="secret")

    def check_secret(self, value: str) -> Actor:
        if hmac.compare_digest(value.encode(), self._secret):
            return self._actor
        raise Unauthenticated("Invalid credentials")

    def authenticate_basic(self, password: str) -> Actor:
        """git over HTTP: any user name, the password is the shared secret (later also a token)."""
        if not password:
            raise Unauthenticated("Missing credentials")
        return self.check_secret(password)

    def authorize(self, actor: Actor, ws_id: str, needed: str) -> Actor:
        """The actor as it acts in workspace `ws_id`; Forbidden when its role there is too low.

        With only the shared secret every workspace is reachable with the secret's role.
        """
        if not actor.can(needed):
            raise Forbidden(f"Requires the {needed} role; you are {actor.role}")
        return actor

    def authenticate(self, headers: Mapping[str, str]) -> Actor:
        """Resolve the caller from request headers; Unauthenticated when absent or wrong."""
        value = headers.get("x-floom-secret")
        if value is None:
            value = headers.get("x-floom-token")
        if value is None:
            auth = headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                value = auth[7:].strip()
        if not value:
            raise Unauthenticated("Missing credentials: send x-floom-secret, x-floom-token or Authorization: Bearer")
        return self.check_secret(value)

"""Deciding who a request is and what it may do in a workspace, in one small table that fails
closed: API tokens (x-floom-token, Bearer, git Basic password), the session cookie and the shared
secret (x-floom-secret). The first credential present decides; a wrong one is 401, never a
fall-through to another method. The server-generated secret lives in system/, never in a repo.

    credential                      identity                     role in workspace W
    x-floom-token / Bearer (user)   the token's user             user's membership role in W
    x-floom-token / Bearer (ws)     the workspace token          token's role, only in its W
    cookie floom_session            the session's user           user's membership role in W
    run token (floomrun_..., Basic) one attempt of one run       viewer, only in its W, and only
                                                                 for git fetch and its run's report
    x-floom-secret                  local-user                   member (admin if configured)
    server admin (user add --admin) that user                    owner in every workspace

A personal token, a session or a workspace token may carry a grant (role cap, workspace, expiry;
services/identity/grants.py) that lowers that role and that everything it mints inherits.
Workspaces are matched by their internal id, so a credential never reaches a later workspace
that reuses a deleted one's name.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from floom_git.errors import Forbidden, Unauthenticated
from floom_git.schemas.rows import TokenRow, UserRow
from floom_git.services.actor import ROLES, Actor
from floom_git.services.identity import Identity
from floom_git.services.identity.cache import ReadCache
from floom_git.services.identity.grants import Grant, lowest
from floom_git.services.identity.run_tokens import RunGrant, RunTokens, looks_like_run_token
from floom_git.services.identity.tokens import INVALID, looks_like_token

SECRET_FILE = "shared-secret"
SESSION_COOKIE = "floom_session"
NOT_MEMBER = "Not a member of the workspace"
MISSING = "Missing credentials: send x-floom-token, Authorization: Bearer or x-floom-secret"
MIN_SECRET_CHARS = 16
# authorize() takes a role; route permissions are accepted too, so callers cannot mix them up.
PERM_ROLE = {"read": "viewer", "write": "member", "admin": "admin", "owner": "owner"}


class NoCredential(Unauthenticated):
    """No credential was sent at all (as opposed to a wrong one, which counts as a failure)."""


def check_secret_strength(secret: str) -> str:
    """The shared secret, refused (ValueError with the reason) when it is too short to resist
    guessing; the server does not start with it."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"FLOOM_SECRET is {len(secret)} characters long; it must have at least "
                         f"{MIN_SECRET_CHARS} (e.g. `openssl rand -hex 24`), or leave it unset to "
                         "use the generated one in system/shared-secret")
    return secret


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


@dataclass(frozen=True)
class Principal(Actor):
    """An authenticated caller. `role` is only meaningful after authorize() for a workspace."""

    is_admin: bool = False  # server administrator: owner in every workspace
    is_user: bool = False  # a stored user (can own tokens, sessions, memberships)
    token_id: str | None = None
    home_workspace: str | None = None  # the one workspace a bound token may act in
    fixed_role: str | None = None  # workspace tokens and the shared secret carry their role
    role_cap: str | None = None  # a personal token or session minted with a lower role
    expires_at: float | None = None  # when this credential's authority ends (None: never)
    run_id: str | None = None  # a run token: the one run it may report (auth_method run_token)

    def grant(self) -> Grant:
        """The limits this credential passes on to what it mints (grants.derive)."""
        return Grant(lowest(self.role_cap, self.fixed_role), self.expires_at, self.home_workspace)

    def with_role(self, role: str) -> Principal:
        """This principal acting with `role` (dataclasses.replace costs more than the whole
        token lookup; this runs on every request)."""
        if role == self.role:
            return self
        clone = object.__new__(Principal)
        clone.__dict__.update(self.__dict__, role=role)
        return clone


def _require_text(value: str, what: str = "credential") -> None:
    """Header bytes that are not UTF-8 arrive as lone surrogates and cannot be hashed or
    compared."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise Unauthenticated(f"Invalid credentials: the {what} is not UTF-8 text") from None


class Authenticator:
    def __init__(self, secret: str, shared_secret_role: str = "member",
                 identity: Identity | None = None,
                 workspace_uid: Callable[[str], str | None] = lambda ws_id: ws_id,
                 run_tokens: RunTokens | None = None) -> None:
        self._secret = check_secret_strength(secret).encode()
        # workspace name -> internal id (None when no such workspace is open)
        self._uid = workspace_uid
        self.run_tokens = run_tokens
        role = shared_secret_role if shared_secret_role in ("member", "admin") else "member"
        self._actor = Principal("local-user", "local-user", "local-user@floom.local", role=role,
                                auth_method="secret", fixed_role=role)
        self.identity = identity
        self._users: ReadCache[UserRow] | None = ReadCache(identity.store) if identity else None
        self._roles: ReadCache[str] | None = ReadCache(identity.store) if identity else None

    def _user(self, user_id: str) -> UserRow | None:
        assert self.identity is not None and self._users is not None
        user = self._users.get(user_id)
        if user is None:
            user = self.identity.store.user(user_id)
            if user is not None:
                self._users.put(user_id, user)
        return user

    # -- who ------------------------------------------------------------------------------
    def check_secret(self, value: str) -> Actor:
        if hmac.compare_digest(value.encode(), self._secret):
            return self._actor
        raise Unauthenticated("Invalid credentials")

    def _credential(self, value: str) -> Actor:
        """A token or the shared secret (the generated secret also starts with floom_)."""
        _require_text(value)
        if self.run_tokens is not None and looks_like_run_token(value):
            return self._run_actor(self.run_tokens.resolve(value))
        if self.identity is not None and looks_like_token(value):
            try:
                return self._token_actor(self.identity.tokens.resolve(value))
            except Unauthenticated as exc:
                if exc.message != INVALID:
                    raise  # expired or revoked: say so, do not try the value as the secret
        return self.check_secret(value)

    def _user_actor(self, user: UserRow, method: str, **extra: object) -> Principal:
        return Principal(user.id, user.username, user.email or f"{user.username}@floom.local",
                         role="owner" if user.is_admin else "viewer", auth_method=method,
                         is_admin=user.is_admin, is_user=True, **extra)  # type: ignore[arg-type]

    def _token_actor(self, row: TokenRow) -> Principal:
        if row.kind == "workspace":
            return Principal(row.id, f"token:{row.name}", f"{row.id}@tokens.floom.local",
                             role=row.role or "member", auth_method="workspace_token",
                             token_id=row.id, home_workspace=row.workspace_id,
                             fixed_role=row.role or "member", expires_at=row.expires_at)
        user = self._user(row.user_id)
        if user is None:
            raise Unauthenticated("Invalid credentials: the token's user no longer exists")
        return self._user_actor(user, "token", token_id=row.id, home_workspace=row.workspace_id,
                                role_cap=row.role, expires_at=row.expires_at)

    def _run_actor(self, found: RunGrant) -> Principal:
        g = found.grant
        return Principal(f"run:{found.run_id}", f"run:{found.run_id}",
                         f"{found.run_id}@runs.floom.local", role=g.role_cap or "viewer",
                         auth_method="run_token", home_workspace=g.workspace_id,
                         fixed_role=g.role_cap or "viewer", expires_at=g.expires_at,
                         run_id=found.run_id)

    def session_actor(self, value: str) -> Principal:
        if self.identity is None:
            raise Unauthenticated("Sessions are not enabled")
        _require_text(value, "session cookie")
        session = self.identity.sessions.resolve(value)
        user = self._user(session.user_id)
        if user is None:
            raise Unauthenticated("Session not found; sign in again")
        return self._user_actor(user, "session", role_cap=session.role_cap,
                                home_workspace=session.workspace_id, expires_at=session.limit_at)

    def authenticate_basic(self, password: str) -> Actor:
        """git over HTTP (and curl -u): any user name, the password is a token or the secret."""
        if not password:
            raise Unauthenticated("Missing credentials")
        return self._credential(password)

    def authenticate(
        self, headers: Mapping[str, str], cookies: Mapping[str, str] | None = None
    ) -> Actor:
        """Resolve the caller; Unauthenticated when absent or wrong. Headers win over the cookie."""
        value = headers.get("x-floom-token")
        if value is not None:
            return self._credential(value.strip())
        auth = headers.get("Authorization")
        if auth is not None:
            scheme, _, rest = auth.partition(" ")
            if scheme.lower() == "bearer":
                return self._credential(rest.strip())
            if scheme.lower() == "basic":
                try:
                    _, _, password = (
                        base64.b64decode(rest.strip(), validate=True).decode().partition(":")
                    )
                except (ValueError, UnicodeDecodeError):  # binascii.Error, non-ASCII input
                    raise Unauthenticated(
                        "Invalid credentials: malformed Basic authorization"
                    ) from None
                return self.authenticate_basic(password)
            raise Unauthenticated(f"Unsupported Authorization scheme {scheme[:20]!r}; use Bearer")
        value = headers.get("x-floom-secret")
        if value is not None:
            return self._credential(value.strip())
        session = (cookies or {}).get(SESSION_COOKIE)
        if session:
            return self.session_actor(session)
        raise NoCredential(MISSING)

    # -- what -----------------------------------------------------------------------------
    def is_server_admin(self, actor: Actor) -> bool:
        """May see server-wide figures: a server admin acting with their full authority (not
        through a workspace-bound or capped-below-admin credential), or the shared secret with
        the admin role."""
        if not isinstance(actor, Principal):
            return False
        if actor.auth_method == "secret":
            return actor.fixed_role == "admin"
        return (actor.is_admin and actor.home_workspace is None
                and lowest(actor.role_cap, "admin") == "admin")

    def role_in(self, actor: Actor, ws_id: str) -> str | None:
        """The actor's role in workspace `ws_id` (a name), or None when it is not a member."""
        if not isinstance(actor, Principal):
            return actor.role  # server-internal actors (e.g. SYSTEM)
        return self._role_in_uid(actor, self._uid(ws_id))

    def _role_in_uid(self, actor: Principal, uid: str | None) -> str | None:
        if actor.home_workspace is not None and actor.home_workspace != uid:
            return None
        if actor.fixed_role is not None:
            role: str | None = actor.fixed_role
        elif actor.is_admin:
            role = "owner"
        elif self.identity is None or uid is None:
            return None
        else:
            assert self._roles is not None
            role = self._roles.get((uid, actor.user_id))
            if role is None:  # only roles are cached, so a new membership shows at once
                role = self.identity.store.role_of(uid, actor.user_id)
                if role is not None:
                    self._roles.put((uid, actor.user_id), role)
        if role is not None and actor.role_cap is not None:
            role = lowest(role, actor.role_cap)
        return role

    def authorize(self, actor: Actor, ws_id: str, needed: str) -> Actor:
        """The actor as it acts in workspace `ws_id` (its role set); Forbidden when it is not a
        member there or its role is lower than `needed` (a role, or a route permission)."""
        needed = PERM_ROLE.get(needed, needed)
        role = self.role_in(actor, ws_id)
        if role is None:
            raise Forbidden(NOT_MEMBER)
        if ROLES.index(role) < ROLES.index(needed):
            raise Forbidden(f"Requires the {needed} role in workspace {ws_id}; you are {role}")
        if isinstance(actor, Principal):
            return actor.with_role(role)
        return dataclasses.replace(actor, role=role)

    def visible_workspaces(self, actor: Actor, ws_ids: list[str]) -> dict[str, str]:
        """workspace id -> role, for the workspaces among `ws_ids` (names) the actor can read."""
        if isinstance(actor, Principal) and actor.is_user and actor.home_workspace is None \
                and not actor.is_admin and self.identity is not None:
            mine = self.identity.members.workspaces_of(actor.user_id)
            out = {w: mine[u] for w in ws_ids if (u := self._uid(w)) is not None and u in mine}
            if actor.role_cap is not None:
                out = {w: lowest(r, actor.role_cap) or r for w, r in out.items()}
            return out
        return {w: r for w in ws_ids if (r := self.role_in(actor, w)) is not None}

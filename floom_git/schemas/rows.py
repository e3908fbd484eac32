"""The identity store's rows (users, tokens, members, device codes, sessions): plain records
that storage/system_store.py reads from SQLite and services and http turn into API shapes. A
leaf, so that http reads them without importing storage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UserRow:
    id: str
    username: str
    email: str | None
    display_name: str | None
    password_hash: str | None
    is_admin: bool
    created_at: float


@dataclass(frozen=True)
class TokenRow:
    id: str
    kind: str  # personal | cli | workspace
    name: str
    user_id: str
    workspace_id: str | None
    role: str | None
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class MemberRow:
    workspace_id: str
    user_id: str | None
    email: str | None
    role: str
    status: str  # active | pending
    invited_by: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class DeviceRow:
    client_name: str
    status: str  # pending | approved | denied | exchanged
    user_id: str | None
    created_at: float
    expires_at: float
    role_cap: str | None = None  # the grant of the approving credential
    workspace_id: str | None = None
    limit_at: float | None = None


@dataclass(frozen=True)
class SessionRow:
    user_id: str
    expires_at: float
    role_cap: str | None  # the grant of the credential that started the session
    workspace_id: str | None
    limit_at: float | None

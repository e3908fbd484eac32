"""Request and response bodies of the identity and tenancy API: sign-in, tokens, the device flow,
workspaces, members and secrets. Timestamps are ISO-8601 UTC strings."""

from __future__ import annotations

from typing import Annotated, Literal

from floom_git.schemas.base import WS, Body, Out, documented, one_line

Role = Literal["viewer", "member", "admin", "owner"]
TokenRole = Literal["viewer", "member", "admin"]




# -- sign-in ---------------------------------------------------------------------------------
class LoginIn(Body, kw_only=True):
    username: str  # or the email address
    password: str


class UserOut(Out, kw_only=True):
    id: str
    username: str
    email: str | None
    display_name: str | None
    is_admin: bool
    created_at: str


class WorkspaceRef(Out, kw_only=True):
    id: str
    name: str


class Me(Out, kw_only=True):
    user: UserOut | None
    identity: str
    auth_method: str
    workspace: WorkspaceRef | None
    role: str | None
    token_id: str | None = None


class SessionOut(Out, kw_only=True):
    user: UserOut
    expires_at: str
    workspace: WorkspaceRef | None = None
    role: str | None = None


class Done(Out, kw_only=True):
    ok: bool


class MagicLinkOut(Out, kw_only=True):
    url: str
    expires_in: int


# -- tokens ----------------------------------------------------------------------------------
class TokenCreate(Body, kw_only=True):
    name: Annotated[str, documented(one_line(100))]
    expires_days: Annotated[int, documented(None, None, None, minimum=1,
                                            maximum=3650)] | None = None
    role: TokenRole | None = None  # personal: a cap below your own; workspace: the token's role


class TokenOut(Out, kw_only=True):
    id: str
    name: str
    kind: str
    user_id: str
    workspace_id: str | None
    role: str | None
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked: bool
    revoked_at: str | None


class TokenCreated(TokenOut, kw_only=True):
    token: str  # shown once


# -- CLI device flow -------------------------------------------------------------------------
class DeviceStart(Body, kw_only=True):
    client_name: str = "floom-cli"
    scopes: list[str] = []


class DeviceOut(Out, kw_only=True):
    device_code: str
    user_code: str
    verification_url: str
    expires_in_seconds: int
    polling_interval_seconds: int


class DeviceDecision(Body, kw_only=True):
    # 8 letters of BCDFGHJKLMNPQRSTVWXZ, any case, anything that is not a letter or digit between
    user_code: Annotated[str,
                         documented(r"^(?:[\W_]*[BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz]){8}[\W_]*$",
                                         None, None)]


class DeviceExchange(Body, kw_only=True):
    device_code: str


class DeviceToken(Out, kw_only=True):
    token: str
    token_id: str
    user: UserOut
    api_base: str


# -- workspaces and members ------------------------------------------------------------------
WorkspaceName = Annotated[str, documented(one_line(100))]
WorkspaceDescription = Annotated[str, documented(one_line(500))]


class WorkspaceCreate(Body, kw_only=True):
    id: Annotated[str, documented(r"^[a-z0-9][a-z0-9_-]{0,62}$", None, None)] | None = None
    name: WorkspaceName | None = None  # the id is derived from it when none is given
    description: WorkspaceDescription | None = None


class WorkspacePatch(Body, kw_only=True):
    name: WorkspaceName | None = None
    description: WorkspaceDescription | None = None


class WorkspaceOut(Out, kw_only=True):
    id: str
    name: str
    description: str | None
    role: str | None
    active: bool = False
    sha: str | None = None


class WorkspaceList(Out, kw_only=True):
    workspaces: list[WorkspaceOut]
    active_id: str  # the workspace requests act on when they name none


class MemberInvite(Body, kw_only=True):
    email: Annotated[str, documented(f"^[{WS}]*[^@{WS}]{{1,64}}@[^@{WS}]{{1,255}}[{WS}]*$", 320,
                                     None)]
    role: Role = "member"


class MemberRoleIn(Body, kw_only=True):
    role: Role


class MemberOut(Out, kw_only=True):
    workspace_id: str
    user_id: str | None
    username: str | None
    email: str | None
    display_name: str | None
    role: str
    status: str  # active | pending
    invited_by: str | None
    created_at: str
    updated_at: str


class MemberList(Out, kw_only=True):
    workspace_id: str
    members: list[MemberOut]
    my_user_id: str
    my_role: str | None


# -- secrets ---------------------------------------------------------------------------------
class SecretIn(Body, kw_only=True):
    value: Annotated[str, documented(r"^[^\x00-\x08\x0a-\x1f]*$", 32768)]


class SecretOut(Out, kw_only=True):
    name: str
    status: Literal["set", "missing"]
    used_by: list[str]
    updated_at: str | None = None
    updated_by: str | None = None


class SecretTest(Out, kw_only=True):
    name: str
    status: Literal["set", "missing"]
    ok: bool
    reason: str


class PlatformConfig(Out, kw_only=True):
    providers: list[str]
    runner: str
    all_required_set: bool
    missing: list[str]
    set_count: int
    required_count: int
    secrets: list[SecretOut]

"""API token routes: personal tokens (/auth/tokens, the signed-in user's own) and workspace tokens
(/workspace/tokens, admin of the active workspace). The value is in the create response only.
A token minted with another credential is never stronger than it (grants.derive)."""

from __future__ import annotations

from aiohttp import web

from floom_git.errors import NotFound
from floom_git.http import wire
from floom_git.http.handlers.auth import SMALL_BODY, identity, require_user
from floom_git.http.handlers.common import actor, workspace
from floom_git.http.keys import MANAGER
from floom_git.schemas.identity import TokenCreate, TokenCreated, TokenOut
from floom_git.schemas.rows import TokenRow
from floom_git.services.auth import Principal
from floom_git.services.identity import manage
from floom_git.services.identity.grants import UNLIMITED, Grant, derive
from floom_git.services.tenancy import iso

PERSONAL = ("personal", "cli")


def token_out(request: web.Request, row: TokenRow) -> TokenOut:
    bound = request.app[MANAGER].by_uid(row.workspace_id)  # stored as the internal id
    return TokenOut(id=row.id, name=row.name, kind=row.kind, user_id=row.user_id,
                    workspace_id=bound.id if bound is not None else row.workspace_id, role=row.role,
                    created_at=iso(row.created_at) or "",
                    expires_at=iso(row.expires_at), last_used_at=iso(row.last_used_at),
                    revoked=row.revoked_at is not None, revoked_at=iso(row.revoked_at))


def _created(request: web.Request, value: str, row: TokenRow) -> web.Response:
    out = token_out(request, row)
    return wire.json(TokenCreated(token=value, **{f: getattr(out, f)
                                                  for f in TokenOut.__struct_fields__}), 201)


def _parent(request: web.Request) -> Grant:
    who = actor(request)
    return who.grant() if isinstance(who, Principal) else UNLIMITED


async def list_personal(request: web.Request) -> web.Response:
    user = require_user(request)
    rows = identity(request).tokens.list(user_id=user.user_id, kinds=PERSONAL)
    return wire.json([token_out(request, r) for r in rows])


async def create_personal(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await wire.decode(request, TokenCreate, SMALL_BODY)
    tokens = identity(request).tokens
    grant = derive(user.grant(), role=body.role, expires_at=tokens.expiry(body.expires_days))
    value, row = await manage.mint_token(
        identity(request), user_id=user.user_id, kind="personal", name=body.name,
        role=grant.role_cap, expires_at=grant.expires_at, workspace_id=grant.workspace_id)
    return _created(request, value, row)


async def revoke_personal(request: web.Request) -> web.Response:
    user = require_user(request)
    tokens = identity(request).tokens
    token_id = request.match_info["id"]
    row = tokens.store.token(token_id)
    if row is None or row.user_id != user.user_id or row.kind not in PERSONAL:
        raise NotFound("Token not found")
    return wire.json(token_out(request, await manage.revoke_token(identity(request), token_id)))


async def list_workspace(request: web.Request) -> web.Response:
    rows = identity(request).tokens.list(workspace_id=workspace(request).uid, kinds=("workspace",))
    return wire.json([token_out(request, r) for r in rows])


async def create_workspace(request: web.Request) -> web.Response:
    """A token that acts only in this workspace with `role` (default member, at most the
    creator's own role there, never owner) and expires no later than the creator's credential."""
    who = actor(request)
    body = await wire.decode(request, TokenCreate, SMALL_BODY)
    tokens = identity(request).tokens
    grant = derive(_parent(request).capped(who.role), role=body.role or "member",
                   expires_at=tokens.expiry(body.expires_days))
    value, row = await manage.mint_token(
        identity(request), user_id=who.user_id, kind="workspace", name=body.name,
        workspace_id=workspace(request).uid, role=grant.role_cap, expires_at=grant.expires_at)
    return _created(request, value, row)


async def revoke_workspace(request: web.Request) -> web.Response:
    tokens = identity(request).tokens
    token_id = request.match_info["id"]
    row = tokens.store.token(token_id)
    if row is None or row.kind != "workspace" or row.workspace_id != workspace(request).uid:
        raise NotFound("Token not found")
    return wire.json(token_out(request, await manage.revoke_token(identity(request), token_id)))

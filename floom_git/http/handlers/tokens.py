"""API token routes: personal tokens (/auth/tokens, the signed-in user's own) and workspace tokens
(/workspace/tokens, admin of the active workspace). The value is in the create response only."""

from __future__ import annotations

import asyncio

from aiohttp import web

from floom_git.errors import Forbidden, NotFound
from floom_git.http import wire
from floom_git.http.handlers.auth import SMALL_BODY, identity, require_user
from floom_git.http.handlers.common import actor, workspace
from floom_git.schemas.identity import TokenCreate, TokenCreated, TokenOut
from floom_git.services.actor import ROLES
from floom_git.services.tenancy import iso
from floom_git.storage.system_store import TokenRow

PERSONAL = ("personal", "cli")


def token_out(row: TokenRow) -> TokenOut:
    return TokenOut(id=row.id, name=row.name, kind=row.kind, user_id=row.user_id,
                    workspace_id=row.workspace_id, role=row.role, created_at=iso(row.created_at) or "",
                    expires_at=iso(row.expires_at), last_used_at=iso(row.last_used_at),
                    revoked=row.revoked_at is not None, revoked_at=iso(row.revoked_at))


def _created(value: str, row: TokenRow) -> web.Response:
    return wire.json(TokenCreated(token=value, **{f: getattr(token_out(row), f)
                                                  for f in TokenOut.__struct_fields__}), 201)


async def list_personal(request: web.Request) -> web.Response:
    user = require_user(request)
    rows = identity(request).tokens.list(user_id=user.user_id, kinds=PERSONAL)
    return wire.json([token_out(r) for r in rows])


async def create_personal(request: web.Request) -> web.Response:
    user = require_user(request)
    body = await wire.decode(request, TokenCreate, SMALL_BODY)
    value, row = await asyncio.to_thread(
        identity(request).tokens.mint, user_id=user.user_id, kind="personal", name=body.name,
        role=body.role, expires_days=body.expires_days,
        # a token minted with a workspace-bound token stays bound to that workspace
        workspace_id=user.home_workspace)
    return _created(value, row)


async def revoke_personal(request: web.Request) -> web.Response:
    user = require_user(request)
    tokens = identity(request).tokens
    token_id = request.match_info["id"]
    row = tokens.store.token(token_id)
    if row is None or row.user_id != user.user_id or row.kind not in PERSONAL:
        raise NotFound("Token not found")
    return wire.json(token_out(await asyncio.to_thread(tokens.revoke, token_id)))


async def list_workspace(request: web.Request) -> web.Response:
    rows = identity(request).tokens.list(workspace_id=workspace(request).id, kinds=("workspace",))
    return wire.json([token_out(r) for r in rows])


async def create_workspace(request: web.Request) -> web.Response:
    """A token that acts only in this workspace with `role` (default member, at most the
    creator's own role and never owner)."""
    who = actor(request)
    body = await wire.decode(request, TokenCreate, SMALL_BODY)
    role = body.role or "member"
    if ROLES.index(role) > ROLES.index(who.role):
        raise Forbidden(f"role: you cannot mint a {role} token as {who.role}")
    value, row = await asyncio.to_thread(
        identity(request).tokens.mint, user_id=who.user_id, kind="workspace", name=body.name,
        workspace_id=workspace(request).id, role=role, expires_days=body.expires_days)
    return _created(value, row)


async def revoke_workspace(request: web.Request) -> web.Response:
    tokens = identity(request).tokens
    token_id = request.match_info["id"]
    row = tokens.store.token(token_id)
    if row is None or row.kind != "workspace" or row.workspace_id != workspace(request).id:
        raise NotFound("Token not found")
    return wire.json(token_out(await asyncio.to_thread(tokens.revoke, token_id)))

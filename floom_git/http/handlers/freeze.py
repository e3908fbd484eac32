"""Freezing a workspace for a move to another node (README "Workspaces on home nodes"): freeze
it, wait until `ready` (no run active, the mirror holds every commit), create it on the new node
(cloned from the mirror), switch the route. Owner only; these routes still answer while frozen."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import settings, workspace
from floom_git.http.keys import MIRROR
from floom_git.schemas.health import FreezeBody
from floom_git.services import freeze, sync


async def get_freeze(request: web.Request) -> web.Response:
    return wire.json(await freeze.status(workspace(request), request.app[MIRROR]))


async def put_freeze(request: web.Request) -> web.Response:
    ws = workspace(request)
    body = await wire.decode_optional(request, FreezeBody, settings(request).max_json_bytes)
    await freeze.start(ws, body.reason or "")
    return wire.json(await freeze.status(ws, request.app[MIRROR]))


async def delete_freeze(request: web.Request) -> web.Response:
    ws = workspace(request)
    await freeze.thaw(ws)
    if settings(request).watch:
        await sync.reconcile(ws)  # on-disk edits made while frozen
    return wire.json(await freeze.status(ws, request.app[MIRROR]))

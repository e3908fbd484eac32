"""Freezing a workspace for a move to another node (README "Workspaces on home nodes"): freeze
it, wait until `ready` (no run active, the mirror holds every commit), create it on the new node
(cloned from the mirror), switch the route. Owner only; these routes still answer while frozen."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import settings, workspace
from floom_git.http.keys import MIRROR
from floom_git.schemas.health import FreezeBody, FreezeStatus
from floom_git.services import freeze, sync
from floom_git.services.workspaces import Workspace

ACTIVE = ("queued", "running")


async def _status(request: web.Request, ws: Workspace) -> FreezeStatus:
    state = freeze.state(ws)
    store = ws.runs
    if state is not None:
        await store.flush()  # the records of runs that ended are committed (and so mirrored)
    active = sum(1 for r in list(store.live.values()) if r.status in ACTIVE)
    mirror = request.app[MIRROR].states().get(ws.id)
    refs = freeze.tips(ws)
    mirrored = bool(mirror is not None and mirror.enabled and not mirror.pending
                    and mirror.pushed == refs)
    since = (dt.datetime.fromtimestamp(state.since, dt.UTC).isoformat(timespec="seconds")
             .replace("+00:00", "Z") if state else None)
    return FreezeStatus(workspace=ws.id, frozen=state is not None, since=since,
                        reason=state.reason if state else None, runs_active=active,
                        mirror=mirror, mirrored=mirrored,
                        ready=state is not None and active == 0 and mirrored)


async def get_freeze(request: web.Request) -> web.Response:
    ws = workspace(request)
    return wire.json(await _status(request, ws))


async def put_freeze(request: web.Request) -> web.Response:
    ws = workspace(request)
    body = await wire.decode_optional(request, FreezeBody, settings(request).max_json_bytes)
    await asyncio.to_thread(freeze.freeze, ws, body.reason or "")
    await freeze.drain(ws)
    return wire.json(await _status(request, ws))


async def delete_freeze(request: web.Request) -> web.Response:
    ws = workspace(request)
    await asyncio.to_thread(freeze.unfreeze, ws)
    if settings(request).watch:
        await sync.reconcile(ws)  # on-disk edits made while frozen
    return wire.json(await _status(request, ws))

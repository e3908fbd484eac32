"""Workspace routes: list the workspaces you can see, create one (you become its owner), rename or
describe it, delete it (owner; never `default`) and select the active one with a cookie."""

from __future__ import annotations

from aiohttp import web

from floom_git.errors import Forbidden
from floom_git.http import wire
from floom_git.http.handlers.auth import SMALL_BODY, identity
from floom_git.http.handlers.common import actor, workspace
from floom_git.http.keys import ACTOR, AUTH, MANAGER
from floom_git.http.selection import WORKSPACE_COOKIE, selected_workspace
from floom_git.schemas.api import Deleted
from floom_git.schemas.identity import WorkspaceCreate, WorkspaceList, WorkspaceOut, WorkspacePatch
from floom_git.services import tenancy
from floom_git.services.auth import Principal
from floom_git.services.workspaces import Workspace


def _out(ws: Workspace, role: str | None, active: bool, sha: str | None = None) -> WorkspaceOut:
    name, description = tenancy.describe(ws)
    return WorkspaceOut(id=ws.id, name=name, description=description, role=role, active=active,
                        sha=sha)


async def list_workspaces(request: web.Request) -> web.Response:
    who = request[ACTOR]
    manager = request.app[MANAGER]
    visible = request.app[AUTH].visible_workspaces(who, manager.ids())
    active = selected_workspace(request, who)
    items = [_out(manager.get(w), role, w == active) for w, role in sorted(visible.items())]
    return wire.json(WorkspaceList(workspaces=items, active_id=active))


async def create_workspace(request: web.Request) -> web.Response:
    who = request[ACTOR]
    if isinstance(who, Principal) and who.home_workspace is not None:
        raise Forbidden("A token bound to one workspace cannot create workspaces")
    if isinstance(who, Principal) and who.role_cap == "viewer":
        raise Forbidden("A credential capped at viewer is read-only; it cannot create workspaces")
    body = await wire.decode(request, WorkspaceCreate, SMALL_BODY)
    owner = who.user_id if isinstance(who, Principal) and who.is_user else None
    ws = await tenancy.create_workspace(request.app[MANAGER], identity(request), who, body,
                                        owner_user_id=owner)
    tip = ws.repo.tip()
    role = request.app[AUTH].role_in(who, ws.id)
    return wire.json(_out(ws, role, False, str(tip.id)[:7] if tip else None), 201)


async def update_workspace(request: web.Request) -> web.Response:
    body = await wire.decode(request, WorkspacePatch, SMALL_BODY)
    ws = workspace(request)
    sha = await tenancy.update_workspace(request.app[MANAGER], ws, actor(request), body)
    return wire.json(
        _out(ws, actor(request).role, selected_workspace(request, actor(request)) == ws.id, sha)
    )


async def delete_workspace(request: web.Request) -> web.Response:
    ws = workspace(request)
    await tenancy.delete_workspace(request.app[MANAGER], ws.id)
    response = wire.json(Deleted(deleted=True, id=ws.id, sha=None))
    if request.cookies.get(WORKSPACE_COOKIE) == ws.id:
        response.del_cookie(WORKSPACE_COOKIE, path="/")
    return response


async def select_workspace(request: web.Request) -> web.Response:
    ws = workspace(request)
    response = wire.json(_out(ws, actor(request).role, True))
    response.set_cookie(WORKSPACE_COOKIE, ws.id, path="/", samesite="Lax", httponly=True,
                        secure=request.secure, max_age=365 * 86400)
    return response

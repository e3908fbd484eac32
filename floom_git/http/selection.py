"""Which workspace a request acts in: the x-workeros-workspace header, else the floom_workspace
cookie set by POST /workspaces/{id}/select (ignored once that workspace is gone), else the one
workspace a bound token belongs to, else `default`. Also which workspaces an operational view
(perm `ops`) covers for its caller."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from floom_git.errors import Forbidden
from floom_git.http.keys import AUTH, MANAGER
from floom_git.services.actor import Actor

WORKSPACE_HEADER = "x-workeros-workspace"
WORKSPACE_COOKIE = "floom_workspace"
DEFAULT = "default"


def selected_workspace(request: web.Request, actor: Actor | None) -> str:
    header = request.headers.get(WORKSPACE_HEADER)
    if header:
        return header
    manager = request.app[MANAGER]
    cookie = request.cookies.get(WORKSPACE_COOKIE)
    if cookie and manager.known(cookie):  # a fenced one answers 503, not default
        return cookie
    home = manager.by_uid(getattr(actor, "home_workspace", None))  # bound: an internal id
    return home.id if home is not None else DEFAULT


@dataclass(frozen=True)
class OpsScope:
    """What an operational view (/health/details, /metrics) shows its caller."""

    server_wide: bool  # disk, process, request and queue figures: server admins only
    workspaces: frozenset[str]  # per-workspace detail: the workspaces the caller administers


def ops_scope(request: web.Request, actor: Actor) -> OpsScope:
    """The caller's scope; Forbidden when it administers nothing."""
    auth, manager = request.app[AUTH], request.app[MANAGER]
    if auth.is_server_admin(actor):
        return OpsScope(True, frozenset(manager.ids()))
    mine = frozenset(w for w, role in auth.visible_workspaces(actor, manager.ids()).items()
                     if role in ("admin", "owner"))
    if not mine:
        raise Forbidden("This view needs the admin role in at least one workspace (it shows "
                        "those), or a server admin for server-wide figures")
    return OpsScope(False, mine)

"""Which workspace a request acts in: the x-workeros-workspace header, else the floom_workspace
cookie set by POST /workspaces/{id}/select (ignored once that workspace is gone), else the one
workspace a bound token belongs to, else `default`."""

from __future__ import annotations

from aiohttp import web

from floom_git.http.keys import MANAGER
from floom_git.services.actor import Actor

WORKSPACE_HEADER = "x-workeros-workspace"
WORKSPACE_COOKIE = "floom_workspace"
DEFAULT = "default"


def selected_workspace(request: web.Request, actor: Actor | None) -> str:
    header = request.headers.get(WORKSPACE_HEADER)
    if header:
        return header
    cookie = request.cookies.get(WORKSPACE_COOKIE)
    if cookie and request.app[MANAGER].known(cookie):  # a fenced one answers 503, not default
        return cookie
    return getattr(actor, "home_workspace", None) or DEFAULT

"""The overview page of the selected workspace and the workspace switcher."""

from __future__ import annotations

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import answer_cookies, call
from floom_git.dashboard.render import redirect, render
from floom_git.errors import InvalidInput
from floom_git.http.handlers import automation, workspaces_api


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


async def overview(request: web.Request) -> web.Response:
    """Run counts, recent runs and what needs attention in the selected workspace."""
    data = await call(request, automation.system_overview)
    return render(request, "overview.html", o=data)


async def select(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    ws_id = forms.text(form, "workspace", 100)
    if not ws_id:
        raise InvalidInput("workspace: choose a workspace")
    await call(request, workspaces_api.select_workspace, params={"id": ws_id})
    response = redirect("/ui/", f"Switched to workspace {ws_id}.")
    answer_cookies(request, response)
    raise response

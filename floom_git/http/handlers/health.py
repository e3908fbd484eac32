"""GET /health/details: disk space (server admins), whether runs are confined, and for each
workspace the caller administers the remote mirror state, the repository health and the
scheduler's state (gathered by services/repo_health.py)."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.keys import ACTOR, ENGINE, MANAGER, MIRROR, SCHEDULER, SETTINGS
from floom_git.http.selection import ops_scope
from floom_git.services import repo_health


async def details(request: web.Request) -> web.Response:
    scope = ops_scope(request, request[ACTOR])
    executor = request.app[ENGINE].executor
    sandbox = repo_health.check_sandbox(executor.sandbox is not None, executor.sandbox_problem)
    return wire.json(await repo_health.details(
        request.app[SETTINGS], request.app[MANAGER], request.app[MIRROR],
        request.app.get(SCHEDULER), sandbox, workspaces=scope.workspaces,
        server_wide=scope.server_wide))

"""GET /health/details: disk space (server admins), whether runs are confined, and for each
workspace the caller administers the remote mirror state, the repository health and the
scheduler's state."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil

from aiohttp import web

from floom_git.http import wire
from floom_git.http.keys import ACTOR, ENGINE, MANAGER, MIRROR, SCHEDULER, SETTINGS
from floom_git.http.selection import OpsScope, ops_scope
from floom_git.schemas.health import (
    DiskCheck,
    HealthChecks,
    HealthDetails,
    MirrorCheck,
    SandboxCheck,
)
from floom_git.schemas.repo_health import RepositoriesCheck, SchedulerCheck
from floom_git.services import repo_health

GB = 1024**3


def _disk(request: web.Request) -> DiskCheck:
    settings = request.app[SETTINGS]
    path = settings.data_dir if settings.data_dir.exists() else settings.data_dir.parent
    usage = shutil.disk_usage(path)
    free = usage.free / GB
    return DiskCheck(
        ok=free >= settings.min_free_gb,
        path=str(settings.data_dir),
        free_gb=round(free, 2),
        total_gb=round(usage.total / GB, 2),
        min_free_gb=settings.min_free_gb,
    )


def _repositories_and_scheduler(request: web.Request, scope: OpsScope
                                ) -> tuple[RepositoriesCheck, SchedulerCheck]:
    settings, manager = request.app[SETTINGS], request.app[MANAGER]
    spaces = [ws for ws in manager.all() if ws.id in scope.workspaces]
    # a fenced workspace has no membership to check against: server admins see it
    fenced = dict(manager.fenced) if scope.server_wide else {}
    scheduler = request.app.get(SCHEDULER)
    return (repo_health.check_repositories(spaces, fenced),
            repo_health.check_scheduler(scheduler, settings.scheduler and scheduler is not None,
                                        settings.scheduler_tick_seconds, spaces))


def _sandbox(request: web.Request) -> SandboxCheck:
    executor = request.app[ENGINE].executor
    if executor.sandbox is None:
        return SandboxCheck(ok=False, mode="none",
                            detail="FLOOM_SANDBOX=none: runs are not confined")
    problem = executor.sandbox_problem
    detail = f"runs fail with sandbox_unavailable: {problem}" if problem else None
    return SandboxCheck(ok=problem is None, mode="bwrap", detail=detail)


async def details(request: web.Request) -> web.Response:
    scope = ops_scope(request, request[ACTOR])
    disk = await asyncio.to_thread(_disk, request) if scope.server_wide else None
    repos, scheduler = await asyncio.to_thread(_repositories_and_scheduler, request, scope)
    mirror = request.app[MIRROR]
    states = {w: s for w, s in mirror.states().items() if w in scope.workspaces}
    mirror_ok = all(s.failures == 0 for s in states.values())
    sandbox = _sandbox(request)
    checks = HealthChecks(
        disk=disk, mirror=MirrorCheck(ok=mirror_ok, enabled=mirror.enabled, workspaces=states),
        sandbox=sandbox, repositories=repos, scheduler=scheduler,
    )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    healthy = (disk is None or disk.ok) and mirror_ok and repos.ok and scheduler.ok and sandbox.ok
    return wire.json(HealthDetails(status="ok" if healthy else "degraded", checked_at=now,
                                   checks=checks))

"""GET /health/details, gathered: disk space, the mirror, run confinement, each workspace
repository (main and floom/runs readable, an unfinished working-tree sync, git lock files) and
the run scheduler. Cheap checks: no fsck (seconds per repository; the crash test runs it)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Collection
from typing import Any

from floom_git.config import Settings
from floom_git.schemas.health import (
    DiskCheck,
    HealthChecks,
    HealthDetails,
    MirrorCheck,
    SandboxCheck,
)
from floom_git.schemas.repo_health import (
    RepoCheck,
    RepositoriesCheck,
    SchedulerCheck,
    ScheduleState,
)
from floom_git.services.mirror import Mirror
from floom_git.services.workspaces import Workspace, WorkspaceManager
from floom_git.storage import journal
from floom_git.storage.git_types import GitError
from floom_git.storage.leftovers import LOCKS
from floom_git.storage.repo import MAIN, RUNS

GB = 1024**3


async def details(settings: Settings, manager: WorkspaceManager, mirror: Mirror, scheduler: Any,
                  sandbox: SandboxCheck, *, workspaces: Collection[str],
                  server_wide: bool) -> HealthDetails:
    """Every check, for a caller who sees `workspaces` (and the disk and the fenced workspaces
    when `server_wide`); the blocking ones run off the event loop."""
    spaces = [ws for ws in manager.all() if ws.id in workspaces]
    # a fenced workspace has no membership to check against: server admins see it
    fenced = dict(manager.fenced) if server_wide else {}

    def blocking() -> tuple[DiskCheck | None, RepositoriesCheck, SchedulerCheck]:
        return (check_disk(settings) if server_wide else None,
                check_repositories(spaces, fenced),
                check_scheduler(scheduler, settings.scheduler and scheduler is not None,
                                settings.scheduler_tick_seconds, spaces))

    disk, repos, schedules = await asyncio.to_thread(blocking)
    states = {w: s for w, s in mirror.states().items() if w in workspaces}
    mirror_ok = all(s.failures == 0 for s in states.values())
    checks = HealthChecks(
        disk=disk, mirror=MirrorCheck(ok=mirror_ok, enabled=mirror.enabled, workspaces=states),
        sandbox=sandbox, repositories=repos, scheduler=schedules,
    )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    healthy = (disk is None or disk.ok) and mirror_ok and repos.ok and schedules.ok and sandbox.ok
    return HealthDetails(status="ok" if healthy else "degraded", checked_at=now, checks=checks)


def check_disk(settings: Settings) -> DiskCheck:
    """Free space where the data lives (blocking)."""
    path = settings.data_dir if settings.data_dir.exists() else settings.data_dir.parent
    usage = shutil.disk_usage(path)
    free = usage.free / GB
    return DiskCheck(ok=free >= settings.min_free_gb, path=str(settings.data_dir),
                     free_gb=round(free, 2), total_gb=round(usage.total / GB, 2),
                     min_free_gb=settings.min_free_gb)


def check_sandbox(confined: bool, problem: str | None) -> SandboxCheck:
    """Whether runs are confined (`confined`: a sandbox is configured; `problem`: why it cannot
    run here)."""
    if not confined:
        return SandboxCheck(
            ok=False, mode="none", detail="FLOOM_SANDBOX=none: runs are not confined"
        )
    detail = f"runs fail with sandbox_unavailable: {problem}" if problem else None
    return SandboxCheck(ok=problem is None, mode="bwrap", detail=detail)


def check_repo(ws: Workspace) -> RepoCheck:
    """Blocking (reads .git): call in a thread."""
    repo = ws.repo
    git_dir = ws.git_dir
    locks = [name for name in LOCKS if (git_dir / name).exists()]
    locks += sorted(p.relative_to(git_dir).as_posix() for p in (git_dir / "refs").rglob("*.lock"))
    check = RepoCheck(ok=False, sync_pending=journal.pending(git_dir), locks=locks)
    try:
        main = repo.tip(MAIN)
        if main is None:
            check.error = "main does not resolve to a commit"
            return check
        len(main.tree)  # the root tree is readable too
        check.main = str(main.id)[:7]
        runs = repo.tip(RUNS)
        check.runs = str(runs.id)[:7] if runs is not None else None
        check.ok = True
    except (GitError, KeyError, ValueError, OSError) as exc:
        check.error = f"{type(exc).__name__}: {exc}"
    return check


def check_repositories(spaces: list[Workspace],
                       fenced: dict[str, str] | None = None) -> RepositoriesCheck:
    """Blocking: call in a thread. `fenced`: workspaces out of service, and why."""
    checks = {ws.id: check_repo(ws) for ws in spaces}
    for ws_id, why in (fenced or {}).items():
        checks[ws_id] = RepoCheck(ok=False, fenced=True, error=why)
    return RepositoriesCheck(ok=all(c.ok for c in checks.values()), workspaces=checks)


def check_scheduler(scheduler: Any, enabled: bool, tick_seconds: float,
                    spaces: list[Workspace]) -> SchedulerCheck:
    """The scheduler's loop and what it plans per workspace (reads its state files: blocking)."""
    task = getattr(scheduler, "_task", None)
    running = task is not None and not task.done()
    states = {}
    for ws in spaces:
        planned = scheduler.state(ws.uid) if scheduler is not None else {}
        times = [
            s["next_run_at"] for s in planned.values() if isinstance(s.get("next_run_at"), str)
        ]
        states[ws.id] = ScheduleState(schedules=len(planned), next_run_at=min(times, default=None),
                                      errors=sum(1 for s in planned.values() if "error" in s))
    return SchedulerCheck(ok=running or not enabled, enabled=enabled, running=running,
                          tick_seconds=tick_seconds, workspaces=states)

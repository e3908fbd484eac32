"""Cheap health checks for GET /health/details: each workspace repository (main and floom/runs
readable, an unfinished working-tree sync, git lock files) and the run scheduler. No fsck: a
full check costs seconds per repository; the crash test runs it instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floom_git.schemas.repo_health import (
    RepoCheck,
    RepositoriesCheck,
    SchedulerCheck,
    ScheduleState,
)
from floom_git.services.workspaces import Workspace
from floom_git.storage.git_types import GitError
from floom_git.storage.leftovers import LOCKS
from floom_git.storage.repo import JOURNAL, MAIN, RUNS


def check_repo(ws: Workspace) -> RepoCheck:
    """Blocking (reads .git): call in a thread."""
    repo = ws.repo
    git_dir = Path(repo.repo.path)
    locks = [name for name in LOCKS if (git_dir / name).exists()]
    locks += sorted(p.relative_to(git_dir).as_posix() for p in (git_dir / "refs").rglob("*.lock"))
    check = RepoCheck(ok=False, sync_pending=(git_dir / JOURNAL).exists(), locks=locks)
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

"""Bodies of the repository and scheduler checks in GET /health/details."""

from __future__ import annotations

import msgspec


class RepoCheck(msgspec.Struct, kw_only=True):
    ok: bool  # main resolves to a readable commit and tree
    main: str | None = None  # 7-character sha of main
    runs: str | None = None  # 7-character sha of floom/runs (None before the first run)
    sync_pending: bool = False  # a working-tree sync was cut short; the next write finishes it
    locks: list[str] = []  # git lock files present now: brief during a write, stale if they stay
    fenced: bool = False  # could not be opened or recovered at start-up: its routes answer 503
    error: str | None = None


class RepositoriesCheck(msgspec.Struct, kw_only=True):
    ok: bool
    workspaces: dict[str, RepoCheck]


class ScheduleState(msgspec.Struct, kw_only=True):
    schedules: int  # cron triggers the scheduler tracks in this workspace
    next_run_at: str | None = None  # the earliest planned fire time
    errors: int = 0  # triggers whose cron or timezone does not parse


class SchedulerCheck(msgspec.Struct, kw_only=True):
    ok: bool  # enabled and its loop alive, or disabled on purpose
    enabled: bool
    running: bool
    tick_seconds: float
    workspaces: dict[str, ScheduleState] = {}

"""Bodies of GET /health/details: server checks (disk space, the remote mirror per workspace, the
run sandbox)."""

from __future__ import annotations

import msgspec

from floom_git.schemas.repo_health import RepositoriesCheck, SchedulerCheck


class MirrorStatus(msgspec.Struct, kw_only=True):
    workspace: str
    enabled: bool  # False when WORKEROS_GIT_REMOTE names no remote for this workspace
    remote: str | None = None  # credentials in the URL are masked
    pending: bool = False  # commits on main or floom/runs not yet confirmed on the remote
    pushing: bool = False
    last_ok_at: str | None = None
    last_error: str | None = None  # the error of the latest attempt; cleared by a success
    last_error_at: str | None = None
    failures: int = 0  # consecutive failed pushes
    next_retry_at: str | None = None
    pushed: dict[str, str] = {}  # ref -> sha the remote is known to hold


class DiskCheck(msgspec.Struct, kw_only=True):
    ok: bool
    path: str
    free_gb: float
    total_gb: float
    min_free_gb: float


class MirrorCheck(msgspec.Struct, kw_only=True):
    ok: bool  # no mirrored workspace has a failing push
    enabled: bool
    workspaces: dict[str, MirrorStatus]


class SandboxCheck(msgspec.Struct, kw_only=True):
    ok: bool  # runs are confined (FLOOM_SANDBOX=bwrap and bubblewrap works here)
    mode: str  # "bwrap" or "none"
    detail: str | None = None  # why runs fail with sandbox_unavailable, or that they are unconfined


class HealthChecks(msgspec.Struct, kw_only=True):
    disk: DiskCheck | None = None  # server-wide: for server admins only
    mirror: MirrorCheck
    sandbox: SandboxCheck | None = None
    repositories: RepositoriesCheck | None = None  # per workspace: main readable, locks, sync
    scheduler: SchedulerCheck | None = None


class HealthDetails(msgspec.Struct, kw_only=True):
    status: str  # "ok" or "degraded"
    checked_at: str
    checks: HealthChecks


class FreezeBody(msgspec.Struct, kw_only=True):
    reason: str | None = None  # shown to refused writers


class FreezeStatus(msgspec.Struct, kw_only=True):
    """GET/POST/DELETE /workspaces/{id}/freeze: whether a workspace may move now."""

    workspace: str
    frozen: bool
    since: str | None = None
    reason: str | None = None
    runs_active: int = 0  # queued or running runs (a move waits for them to end)
    mirror: MirrorStatus | None = None
    mirrored: bool = False  # the mirror remote holds main and floom/runs as they are now
    ready: bool = False  # frozen, no run active, fully mirrored: switch the route now

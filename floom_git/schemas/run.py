"""Run records (runs/<date>/<run_id>/run.json on floom/runs), their approval block, log lines,
and the API bodies of runs, approvals, webhooks, alerts and run statistics."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

STATUSES = ("queued", "running", "pending_approval", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
LEVELS = ("debug", "info", "warning", "error", "critical")


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Out(msgspec.Struct, kw_only=True):
    pass


class Record(msgspec.Struct, kw_only=True):
    """Base of structs stored in files (every field written, so a reader of run.json sees
    nulls too); unknown fields from newer servers are ignored when reading."""


class LogLine(Record, kw_only=True):
    seq: int
    level: str
    message: str
    timestamp: str


class Artifact(Record, kw_only=True):
    id: str
    name: str
    path: str  # relative to the run's artifacts/ folder
    size_bytes: int
    media_type: str
    created_at: str
    # Set when the file was not kept: "secret" (it held a secret value of the run) or "too_large".
    artifact_withheld: str | None = None


class Approval(Record, kw_only=True):
    id: str
    status: Literal["pending", "approved", "rejected", "expired", "cancelled"] = "pending"
    label: str
    preview: str = ""
    preview_type: str | None = None
    preview_payload: Any = None
    created_at: str
    expires_at: str
    decided_at: str | None = None
    decided_by: str | None = None
    reason: str | None = None
    annotation: Any = None
    edited_output: dict[str, Any] | None = None
    follow_up_run_id: str | None = None


class TimelineEvent(Record, kw_only=True):
    """A non-log event of the run (status change, approval decision), numbered with the logs."""

    seq: int
    type: str
    at: str
    data: dict[str, Any] = {}


class RunRecord(Record, kw_only=True):
    id: str
    worker_id: str
    worker_name: str
    worker_sha: str
    status: str = "queued"
    trigger_source: str = "manual"
    trigger_ref: str | None = None
    created_by: str | None = None
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    exit_code: int | None = None
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    approval: Approval | None = None
    approval_of: str | None = None  # the run whose approval started this follow-up run
    artifacts: list[Artifact] = []
    timeline: list[TimelineEvent] = []
    seq: int = 0  # last event number used (logs and timeline share it)

    @property
    def date(self) -> str:
        return self.created_at[:10]

    @property
    def ended(self) -> bool:
        """The process part is over: nothing more will be logged."""
        return self.status in TERMINAL or self.status == "pending_approval"


class IndexEntry(Record, kw_only=True):
    """The fields of a record the in-memory index keeps for lists, filters and stats."""

    id: str
    worker_id: str
    worker_name: str = ""
    status: str
    trigger_source: str = "manual"
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    error_code: str | None = None
    approval: Approval | None = None


# -- API bodies -------------------------------------------------------------------------------
class RunCreate(Strict, kw_only=True):
    inputs: dict[str, Any] = {}
    trigger_source: str | None = None


class RunCreated(Out, kw_only=True):
    status: str
    run_id: str


class RunSummary(Out, kw_only=True, omit_defaults=True):
    id: str
    worker_id: str
    worker_name: str
    status: str
    trigger_source: str
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    error_code: str | None = None
    queue_position: int | None = None


class RunDetail(Out, kw_only=True, omit_defaults=True):
    id: str
    worker_id: str
    worker_name: str
    worker_sha: str
    status: str
    trigger_source: str
    trigger_ref: str | None = None
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    exit_code: int | None = None
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    queue_position: int | None = None
    approval: Approval | None = None
    approval_of: str | None = None
    artifacts: list[Artifact] = []
    logs: list[LogLine] = []
    can_replay: bool = False


class CancelResult(Out, kw_only=True):
    status: str
    run_id: str


class ApproveBody(Strict, kw_only=True):
    edited_output: dict[str, Any] | None = None
    annotation: Any = None
    annotations: Any = None
    reason: str | None = None


class RejectBody(Strict, kw_only=True):
    reason: str | None = None
    annotation: Any = None
    annotations: Any = None


class Decision(Out, kw_only=True, omit_defaults=True):
    status: str
    run_id: str
    approval_id: str
    follow_up_run_id: str | None = None


class ApprovalOut(Approval, kw_only=True):
    run_id: str
    worker_id: str
    worker_name: str


class ApprovalCount(Out, kw_only=True):
    pending: int


class WebhookSecret(Out, kw_only=True):
    worker_id: str
    webhook_secret: str
    webhook_token: str
    webhook_url: str


class WorkerPatch(Strict, kw_only=True):
    webhook_secret_rotate: bool = False


class WebhookAccepted(Out, kw_only=True, omit_defaults=True):
    status: str
    run_id: str
    deduped: bool = False


class AlertCreate(Strict, kw_only=True):
    url: str
    on: list[Literal["failed", "completed"]] = msgspec.field(default_factory=lambda: ["failed"])
    description: str | None = None


class AlertDelivery(Record, kw_only=True):
    run_id: str
    event: str
    at: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


class Alert(Record, kw_only=True):
    id: str
    worker_id: str
    url: str
    on: list[str]
    description: str | None = None
    created_at: str
    secret: str | None = None  # shown once, in the create response
    deliveries: list[AlertDelivery] = []


class WorkerStats(Out, kw_only=True):
    worker_id: str
    total_runs: int
    total_failures: int
    error_rate: float | None
    runs_7d: int
    success_rate_7d: float | None
    success_rate_change_7d: float | None
    runs_30d: int
    success_rate_30d: float | None
    avg_duration_ms: int | None
    p50_duration_ms: int | None
    p95_duration_ms: int | None
    last_run_at: str | None
    last_error: str | None
    last_error_at: str | None
    counts: dict[str, int]


class TimeseriesPoint(Out, kw_only=True):
    date: str
    total: int
    completed: int
    failed: int


class WorkerLogLine(Out, kw_only=True):
    run_id: str
    seq: int
    level: str
    message: str
    timestamp: str


class Overview(Out, kw_only=True):
    workers_count: int
    active_workers: int
    runs_total: int
    runs_7d: int
    runs_failed_7d: int
    success_rate_7d: float | None
    queued: int
    running: int
    pending_approvals: int
    recent_runs: list[RunSummary]
    alerts: list[dict[str, Any]]

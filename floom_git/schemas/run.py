"""Run records (runs/<date>/<run_id>/run.json on floom/runs), their approval block, log lines,
and the API bodies of runs, approvals, webhooks, alerts and run statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from floom_git.schemas.base import Body, Out
from floom_git.schemas.patterns import matching

STATUSES = ("queued", "running", "pending_approval", "completed", "failed", "cancelled")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
LEVELS = ("debug", "info", "warning", "error", "critical")




class Record(msgspec.Struct, kw_only=True):
    """Base of structs stored in files (every field written, so a reader of run.json sees
    nulls too); unknown fields from newer servers are ignored when reading."""


class LogLine(Record, kw_only=True):
    """One line of a run's log. An agent run's steps (model turns, tool calls, retries, its
    end) also carry the step itself as `event` (a JSON object whose `type` names it); null on
    every other line."""

    seq: int
    level: str
    message: str
    timestamp: str
    event: dict[str, Any] | None = None


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
    # Set when an agent asked for this approval (its request_approval call): the decision
    # resumes the same run instead of starting a follow-up run.
    tool_call_id: str | None = None


class ToolCall(Record, kw_only=True):
    """One tool call of an agent run (REFERENCE §3.2, plus the model turn that asked for it,
    why it failed, how long it took and the connection of a remote tool); script runs have
    none."""

    id: str
    name: str
    arguments: Any = None
    result: Any = None
    error: str | None = None
    error_code: str | None = None
    turn: int | None = None
    duration_ms: int | None = None
    connection_id: str | None = None  # the connection whose remote tool was called


class AgentUsage(Record, kw_only=True):
    """What an agent run used: the provider and model it talked to and their token counts."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    turns: int = 0  # model calls


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
    tool_calls: list[ToolCall] = []
    total_tokens: int | None = None  # model tokens of an agent run
    cost_usd: float | None = None  # what the run's model calls cost
    agent: AgentUsage | None = None  # agent runs only
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
    cost_usd: float | None = None


# -- API bodies -------------------------------------------------------------------------------
class RunCreate(Body, kw_only=True):
    inputs: dict[str, Any] = {}
    trigger_source: str | None = None


class RunCreated(Out, kw_only=True):
    status: str
    run_id: str


class RunSummary(Out, kw_only=True):
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


class ArtifactOut(Artifact, kw_only=True):
    """An artifact as the API shows it: the record's fields plus the reference's names."""

    run_id: str
    type: str  # file kind from the media type: markdown, csv, json, text, image, file
    relative_path: str
    download_url: str


class OutputField(Out, kw_only=True):
    name: str
    type: str
    label: str
    value: Any


class RunDetail(Out, kw_only=True):
    """A run with its outputs, first log lines, artifacts, tool calls and approval. `output`
    and `input` repeat `outputs` and `inputs` under the reference's names."""

    id: str
    worker_id: str
    worker_name: str
    worker_sha: str
    status: str
    trigger_source: str
    trigger_ref: str | None
    runner: str
    created_by: str | None
    input: dict[str, Any]
    inputs: dict[str, Any]
    output: dict[str, Any] | None
    outputs: dict[str, Any] | None
    output_schema: list[OutputField]
    error: str | None
    error_code: str | None
    exit_code: int | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    duration_ms: int | None
    queue_position: int | None
    approval: Approval | None
    # The reference's name for the same object: {id, status, label, preview, created_at,
    # decided_at, reason, follow_up_run_id, annotation, edited_output, ...} or null.
    approval_trail: Approval | None
    approval_of: str | None
    artifacts: list[ArtifactOut]
    tool_calls: list[ToolCall]
    transcript: list[dict[str, Any]]
    logs: list[LogLine]  # the first `logs_limit` lines; the rest at logs_url / logs_stream_url
    log_count: int
    logs_truncated: bool
    logs_url: str
    logs_stream_url: str
    total_tokens: int | None
    total_cost_usd: float | None
    agent: AgentUsage | None
    can_replay: bool


class CancelResult(Out, kw_only=True):
    status: str
    run_id: str


class ApproveBody(Body, kw_only=True):
    edited_output: dict[str, Any] | None = None
    annotation: Any = None
    annotations: Any = None
    reason: str | None = None
    comment: str | None = None  # the reference CLI's note: kept as the annotation

    @property
    def note(self) -> Any:
        for value in (self.annotation, self.annotations, self.comment):
            if value is not None:
                return value
        return None


class RejectBody(Body, kw_only=True):
    reason: str | None = None
    annotation: Any = None
    annotations: Any = None
    comment: str | None = None  # the reference CLI's note: the reason when none is given

    @property
    def why(self) -> str | None:
        return self.reason if self.reason is not None else self.comment

    @property
    def note(self) -> Any:
        return self.annotation if self.annotation is not None else self.annotations


class Decision(Out, kw_only=True):
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


class WorkerPatch(Body, kw_only=True):
    """PATCH /workers/{id}: the reference's instance settings. Each present field is an edit of
    worker.yml (all in one commit), except `starred` (per person, server state) and
    `webhook_secret_rotate` (the secret is server state)."""

    enabled: bool | None = None
    input_values: dict[str, Any] | None = None
    trigger_type: Literal["manual", "schedule", "cron", "webhook"] | None = None
    cron: str | None = None
    cron_expr: str | None = None  # the reference's name for `cron`
    timezone: str | None = None
    cron_timezone: str | None = None  # the reference's name for `timezone`
    visibility: Literal["private", "workspace", "shared", "public"] | None = None
    starred: bool | None = None
    webhook_secret_rotate: bool = False
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | None = None  # the title
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None


class WebhookAccepted(Out, kw_only=True):
    status: str
    run_id: str
    deduped: bool = False


AlertEvent = Literal["failed", "completed", "approval_required"]
Email = Annotated[str, matching(
    r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+$",
    "one email address (name@host, no spaces, commas or brackets)", max_length=254)]


class AlertCreate(Body, kw_only=True):
    url: str | None = None
    email_to: list[Email] = []
    on: list[AlertEvent] = msgspec.field(default_factory=lambda: ["failed"])
    description: str | None = None


class AlertDelivery(Record, kw_only=True):
    run_id: str
    event: str
    at: str
    ok: bool
    attempts: int
    channel: str = "webhook"  # webhook | email
    target: str | None = None  # the URL or the email addresses
    status: int | None = None
    error: str | None = None


class Alert(Record, kw_only=True):
    id: str
    worker_id: str
    url: str | None = None
    email_to: list[str] = []
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
    total_cost_usd: float  # sum over the worker's runs (script runs cost nothing)
    avg_cost_usd: float | None


class RecentStats(Out, kw_only=True):
    last_run_at: str | None
    runs_7d: int
    success_rate_7d: float | None
    success_rate_change_7d: float | None


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

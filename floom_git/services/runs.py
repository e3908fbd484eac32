"""The run state machine: create (queued), start (running), finish (completed, failed, cancelled
or pending_approval), park, cancel and recovery after a restart; every change numbered as an
event and durable (services/run_records.py) before it returns. Inputs are checked by
services/run_inputs.py; what the API shows of a run is services/run_views.py's.

Entry points other features use: `create_run(ws, worker_id, inputs, ...)` starts a run (the
benchmark and the scheduler call it); `get_run(ws, run_id)` returns a record or raises NotFound;
`add_feedback` / `list_feedback` keep run feedback in `feedback.ndjson` beside the record.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from floom_git import paths
from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.schemas.manifest import Manifest
from floom_git.schemas.run import (
    TERMINAL,
    Approval,
    Artifact,
    IndexEntry,
    RunRecord,
    TimelineEvent,
)
from floom_git.services import agent_setup, connection_files, freeze
from floom_git.services.actor import Actor
from floom_git.services.run_inputs import committed_manifest, validate_inputs, with_saved
from floom_git.services.run_records import RunStore
from floom_git.services.workspaces import Workspace

RESERVED_INPUTS = ("decision", "approved_output")
PREVIEW_CHARS = 2000


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str, field_name: str) -> dt.datetime:
    """An ISO-8601 timestamp (naive means UTC); InvalidInput naming `field_name` otherwise."""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{field_name}: expected an ISO-8601 timestamp, got '{value[:40]}'"
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    try:
        when.astimezone(dt.UTC)
    except OverflowError:
        # Year 1 or 9999 with an offset falls off the calendar in UTC: it is before (or after)
        # every run, which is what a filter of that moment means.
        edge = dt.datetime.min if when.year == 1 else dt.datetime.max
        return edge.replace(tzinfo=dt.UTC)
    return when


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def store(ws: Workspace) -> RunStore:
    return ws.runs


# -- for other features -----------------------------------------------------------------------
def get_run(ws: Workspace, run_id: str) -> RunRecord:
    """The run record `run_id` of `ws`; raises NotFound("Run not found")."""
    return store(ws).get(run_id)


def add_feedback(ws: Workspace, run_id: str, item: dict[str, Any]) -> None:
    """Append `item` (one JSON object) to runs/<date>/<run_id>/feedback.ndjson on floom/runs.
    Durable on return; committed with the next group of records. Raises NotFound."""
    store(ws).append_line(run_id, "feedback.ndjson", msgspec.json.encode(item))


def list_feedback(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    data = store(ws).read_file(run_id, "feedback.ndjson") or b""
    return [json.loads(line) for line in data.splitlines() if line.strip()]


# -- lifecycle ----------------------------------------------------------------------------------
def transition(record: RunRecord, status: str, **data: Any) -> None:
    """Set the status and number the change as an event (SSE replays these)."""
    record.status = status
    record.seq += 1
    payload = {"status": status, **{k: v for k, v in data.items() if v is not None}}
    record.timeline.append(
        TimelineEvent(seq=record.seq, type="status", at=iso(now()), data=payload)
    )


def _check_worker(ws: Workspace, worker_id: str) -> None:
    entry = ws.workers.get(worker_id) if paths.WORKER_ID_RE.match(worker_id or "") else None
    if entry is None:
        raise NotFound("Worker not found")
    if entry.manifest is None:
        raise InvalidInput(f"Worker {worker_id} is in error state: {entry.error}")
    if entry.manifest.archived:
        raise Conflict(f"Worker {worker_id} is archived")
    if entry.manifest.paused or entry.manifest.enabled is False:
        raise Conflict(f"Worker {worker_id} is paused")


# What an API caller may say started a run; webhook, schedule and approval are the server's own
# (the audit trail says which trigger really started a run).
CALLER_TRIGGERS = ("manual", "api", "cli")  # "cli": the reference Python CLI's label


def caller_trigger_source(value: str | None) -> str:
    """The trigger_source an API caller asked for (default manual); InvalidInput for the
    server's own sources or anything else."""
    if value is None:
        return "manual"
    if value not in CALLER_TRIGGERS:
        raise InvalidInput(
            f"trigger_source: must be one of {', '.join(CALLER_TRIGGERS)} "
            "(webhook, schedule, approval and the other sources are the server's own)"
        )
    return value


def create_run(
    ws: Workspace,
    worker_id: str,
    inputs: dict[str, Any] | None = None,
    *,
    trigger_source: str = "manual",
    trigger_ref: str | None = None,
    actor: Actor | None = None,
    approval_of: RunRecord | None = None,
    approved_output: dict[str, Any] | None = None,
) -> RunRecord:
    """Validate and queue a run; durable (spooled with fsync) when this returns.

    Raises NotFound (worker), Conflict (paused/archived/not committed, an agent worker that
    needs setup, or a worker whose declared connections do not exist: the reason), InvalidInput
    (worker in error, missing or bad inputs).
    """
    freeze.check_writable(ws)
    if approval_of is None:
        _check_worker(ws, worker_id)
        manifest, sha = committed_manifest(ws, worker_id)
        effective = validate_inputs(manifest, with_saved(manifest, inputs))
        if manifest.approvals.required:
            for key in RESERVED_INPUTS:
                effective.pop(key, None)
            effective["decision"] = "proposed"
    else:
        manifest, sha = committed_manifest(ws, worker_id, approval_of.worker_sha)
        effective = {k: v for k, v in approval_of.inputs.items() if k not in RESERVED_INPUTS}
        effective["decision"] = "approved"
        effective["approved_output"] = approved_output
    if manifest.mode == "agent":
        problem = agent_setup.setup_problem(ws, manifest.model)
        if problem is not None:
            raise Conflict(f"Worker {worker_id} needs setup: {problem}")
    missing = connection_files.missing_connections(ws, manifest)
    if missing:  # its status says missing_connection: a run could only fail
        raise Conflict(f"Worker {worker_id} is missing connections: {', '.join(missing)} "
                       f"(connect them under /connections first)")
    record = RunRecord(
        id=new_id("run"), worker_id=worker_id, worker_name=manifest.title, worker_sha=sha,
        trigger_source=(trigger_source or "manual")[:64], trigger_ref=trigger_ref,
        created_by=actor.user_id if actor else None, inputs=effective, created_at=iso(now()),
        approval_of=approval_of.id if approval_of else None,
    )
    transition(record, "queued")
    s = store(ws)
    s.put(record)
    if s.hooks is not None:
        s.hooks.submit(ws.uid, record.id)
    return record


def start(ws: Workspace, run_id: str) -> RunRecord | None:
    """queued -> running; None when the run is no longer queued (cancelled meanwhile)."""
    s = store(ws)
    try:
        record = s.get(run_id)
    except NotFound:
        return None
    if record.status != "queued":
        return None
    record.started_at = record.started_at or iso(now())  # an agent run resumed after approval
    transition(record, "running")
    s.put(record)
    return record


@dataclass
class Outcome:
    """What an execution ended with; `finish` turns it into the record's final state."""

    status: str  # completed | failed | cancelled
    outputs: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    exit_code: int | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    decision_required: dict[str, Any] | None = None


def _duration(record: RunRecord, end: dt.datetime) -> int | None:
    if not record.started_at:
        return None
    return max(0, int((end - parse_iso(record.started_at, "started_at")).total_seconds() * 1000))


def finish(ws: Workspace, record: RunRecord, outcome: Outcome, manifest: Manifest | None) -> None:
    """Apply an execution's outcome: completed, failed, cancelled, or pending_approval when the
    worker requires approval and this is not the approved follow-up run."""
    s = store(ws)
    s.close_logs(record.id)
    end = now()
    record.outputs = outcome.outputs
    record.exit_code = outcome.exit_code
    record.artifacts = outcome.artifacts
    record.duration_ms = _duration(record, end)
    status = outcome.status
    if status == "failed":
        record.error = outcome.error or "Run failed"
        record.error_code = outcome.error_code or "unknown_error"
    elif status == "cancelled":
        record.error = outcome.error or "Cancelled by user"
        record.error_code = outcome.error_code or "user_cancel"
    needs_approval = (status == "completed" and manifest is not None and manifest.approvals.required
                      and record.inputs.get("decision") != "approved")
    if needs_approval:
        assert manifest is not None
        asked = outcome.decision_required or {}
        preview = asked.get("preview")
        if not isinstance(preview, str):
            preview = json.dumps(record.outputs or {}, indent=2, ensure_ascii=False)[:PREVIEW_CHARS]
        _await_approval(ws, record, manifest, Approval(
            id=new_id("apr"), label=str(asked.get("label") or manifest.approvals.label),
            preview=preview, preview_type=asked.get("preview_type"),
            preview_payload=asked.get("preview_payload"), created_at=iso(end), expires_at=""))
    else:
        record.completed_at = iso(end)
        transition(record, status, error=record.error, error_code=record.error_code,
                   completed_at=record.completed_at, duration_ms=record.duration_ms)
    s.put(record)
    if s.hooks is not None and record.ended:  # pending_approval too: approval_required alerts
        s.hooks.finished(ws.uid, record)


def _await_approval(
    ws: Workspace, record: RunRecord, manifest: Manifest, approval: Approval
) -> None:
    ttl = (manifest.approvals.expires_hours * 3600 if manifest.approvals.expires_hours
           else ws.settings.approval_ttl_seconds)
    approval.expires_at = iso(
        parse_iso(approval.created_at, "created_at") + dt.timedelta(seconds=ttl)
    )
    record.approval = approval
    transition(record, "pending_approval", approval_id=approval.id, label=approval.label)


def park(ws: Workspace, record: RunRecord, manifest: Manifest, *, label: str, preview: str,
         tool_call_id: str) -> None:
    """An agent asked a person to approve a step (its request_approval call `tool_call_id`):
    the run waits in pending_approval; the decision resumes this same run (approvals.py)."""
    s = store(ws)
    s.close_logs(record.id)
    end = now()
    record.duration_ms = _duration(record, end)
    _await_approval(ws, record, manifest, Approval(
        id=new_id("apr"), label=label, preview=preview, created_at=iso(end), expires_at="",
        tool_call_id=tool_call_id))
    s.put(record)
    if s.hooks is not None:
        s.hooks.finished(ws.uid, record)  # approval_required alerts


def fail(ws: Workspace, record: RunRecord, code: str, message: str) -> None:
    finish(ws, record, Outcome("failed", error=message, error_code=code), None)


def recover(ws: Workspace, spooled: list[RunRecord],
            entries: list[IndexEntry] | None = None) -> list[str]:
    """After a restart: re-register spooled records, fail runs that were running
    (`interrupted_by_restart`) and return the ids of queued runs, oldest first. `entries`
    limits that to these index entries (records a cold start read after the others)."""
    s = store(ws)
    for record in spooled:
        s.put(record, durable=False)
    queued: list[tuple[str, str]] = []
    for entry in list(s.index.values()) if entries is None else entries:
        if entry.status == "running":
            record = s.get(entry.id)
            end = now()
            record.error = "The server restarted while the run was running"
            record.error_code = "interrupted_by_restart"
            record.completed_at = iso(end)
            record.duration_ms = _duration(record, end)
            transition(record, "failed", error=record.error, error_code=record.error_code,
                       completed_at=record.completed_at)
            s.put(record)
        elif entry.status == "queued":
            if entry.id not in s.live:
                s.live[entry.id] = s.get(entry.id)
            queued.append((entry.created_at, entry.id))
    return [rid for _, rid in sorted(queued)]


def cancel(ws: Workspace, run_id: str, actor: Actor, *, code: str | None = None,
           message: str | None = None) -> str:
    """Cancel a queued, running or pending run: "cancelled", or "cancel_requested" while the
    process is being stopped. Conflict when the run has already ended. `code` and `message`
    replace the error_code and error of a cancel by a person (the server's own reasons)."""
    s = store(ws)
    record = s.get(run_id)
    if record.status in TERMINAL:
        raise Conflict(f"Run {run_id} is already {record.status}")
    if record.status == "running" and s.hooks is not None and s.hooks.cancel(ws.uid, run_id):
        return "cancel_requested"
    if record.status == "queued" and s.hooks is not None:
        s.hooks.cancel(ws.uid, run_id)
    code = code or ("cancelled_queued" if record.status == "queued" else "user_cancel")
    if record.approval is not None and record.approval.status == "pending":
        record.approval.status = "cancelled"
        record.approval.decided_at = iso(now())
        record.approval.decided_by = actor.user_id
    record.error, record.error_code = message or f"Cancelled by {actor.name}", code
    record.completed_at = iso(now())
    transition(record, "cancelled", error=record.error, error_code=code,
               completed_at=record.completed_at)
    s.put(record)
    if s.hooks is not None:
        s.hooks.finished(ws.uid, record)
    return "cancelled"

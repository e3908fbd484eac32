"""Runs: trigger (inputs checked against the manifest of the pinned commit), read, list, cancel,
approvals, and the state transitions the engine drives (start, finish, expire).

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

from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.schemas.manifest import Field, Manifest, parse_manifest
from floom_git.schemas.run import (
    STATUSES,
    TERMINAL,
    Approval,
    Artifact,
    ArtifactOut,
    IndexEntry,
    LogLine,
    OutputField,
    RunDetail,
    RunRecord,
    RunSummary,
    TimelineEvent,
)
from floom_git.services import agent_setup, freeze
from floom_git.services.actor import Actor
from floom_git.services.run_records import RunStore
from floom_git.services.workspaces import Workspace
from floom_git.storage import paths

RESERVED_INPUTS = ("decision", "approved_output")
PREVIEW_CHARS = 2000
_manifests: dict[str, Manifest] = {}  # blob id -> parsed manifest (blobs never change)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str, field_name: str) -> dt.datetime:
    """An ISO-8601 timestamp (naive means UTC); InvalidInput naming `field_name` otherwise."""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field_name}: expected an ISO-8601 timestamp, got '{value[:40]}'") from None
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
    return RunStore.of(ws)


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


# -- manifests and inputs ---------------------------------------------------------------------
def committed_manifest(ws: Workspace, worker_id: str, sha: str | None = None) -> tuple[Manifest, str]:
    """The worker's manifest at commit `sha` (default: tip of main) and that commit's full sha."""
    commit = ws.repo.resolve(sha) if sha else ws.repo.tip()
    where = f"{paths.worker_dir(worker_id)}/{paths.MANIFEST}"
    blob = ws.repo.entry(commit, where)
    if commit is None or blob is None:
        raise Conflict(f"Worker {worker_id} is not committed yet (on-disk edits are synced after a "
                       "short quiet period); retry in a moment")
    key = str(blob.id)
    manifest = _manifests.get(key)
    if manifest is None:
        manifest = parse_manifest(blob.data, where=where, folder=worker_id)
        if len(_manifests) > 4096:
            _manifests.clear()
        _manifests[key] = manifest
    return manifest, str(commit.id)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _choices(f: Field) -> list[Any] | None:
    raw = f.enum or f.options
    if not raw:
        return None
    return [o.get("value") if isinstance(o, dict) else o for o in raw]


def _check_value(f: Field, value: Any) -> Any:
    at = f"inputs.{f.name}"
    kind = f.type or "string"
    if f.kind == "file":
        if not isinstance(value, str):
            raise InvalidInput(f"{at}: expected a file path or upload id (a string)")
        return value
    if kind in ("number", "integer"):
        if isinstance(value, str):
            try:
                value = float(value) if kind == "number" else int(value)
            except ValueError:
                raise InvalidInput(f"{at}: expected a number, got '{value[:40]}'") from None
            if kind == "number" and float(value).is_integer():
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{at}: expected a number")
        if kind == "integer" and not float(value).is_integer():
            raise InvalidInput(f"{at}: expected an integer")
        b = f.bounds
        if b and b.minimum is not None and value < b.minimum:
            raise InvalidInput(f"{at}: must be >= {b.minimum:g}")
        if b and b.maximum is not None and value > b.maximum:
            raise InvalidInput(f"{at}: must be <= {b.maximum:g}")
    elif kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise InvalidInput(f"{at}: expected true or false")
    elif kind != "json":
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise InvalidInput(f"{at}: expected a string")
        if kind == "url" and not value.startswith(("http://", "https://")):
            raise InvalidInput(f"{at}: expected an http(s) URL")
        b = f.bounds
        if b and b.min_length is not None and len(value) < b.min_length:
            raise InvalidInput(f"{at}: must be at least {b.min_length} characters")
        if b and b.max_length is not None and len(value) > b.max_length:
            raise InvalidInput(f"{at}: must be at most {b.max_length} characters")
    choices = _choices(f)
    if choices is not None and value not in choices:
        shown = ", ".join(str(c) for c in choices[:20])
        raise InvalidInput(f"{at}: must be one of {shown}")
    return value


def validate_inputs(manifest: Manifest, given: dict[str, Any]) -> dict[str, Any]:
    """Effective inputs: given values checked and converted, defaults filled in. Raises
    InvalidInput `Missing required inputs: a, b` or naming the bad input."""
    out = dict(given)
    missing = [f.name for f in manifest.exec.inputs
               if f.required and _empty(out.get(f.name)) and f.default is None]
    if missing:
        raise InvalidInput("Missing required inputs: " + ", ".join(missing))
    for f in manifest.exec.inputs:
        if _empty(out.get(f.name)):
            if f.default is not None:
                out[f.name] = f.default
            continue
        out[f.name] = _check_value(f, out[f.name])
    return out


def check_given(manifest: Manifest, values: dict[str, Any], where: str = "input_values") -> None:
    """Check the values given for declared inputs (none is required here); InvalidInput naming
    the first bad one."""
    for f in manifest.exec.inputs:
        if not _empty(values.get(f.name)):
            try:
                _check_value(f, values[f.name])
            except InvalidInput as exc:
                raise InvalidInput(exc.message.replace("inputs.", f"{where}.", 1)) from None


def with_saved(manifest: Manifest, given: dict[str, Any] | None) -> dict[str, Any]:
    """The inputs a run starts from: the worker's saved `input_values`, then the run's own."""
    return {**(manifest.input_values or {}), **(given or {})}


def missing_required(manifest: Manifest, given: dict[str, Any]) -> list[str]:
    given = with_saved(manifest, given)
    return [f.name for f in manifest.exec.inputs
            if f.required and _empty(given.get(f.name)) and f.default is None]


# -- lifecycle ----------------------------------------------------------------------------------
def transition(record: RunRecord, status: str, **data: Any) -> None:
    """Set the status and number the change as an event (SSE replays these)."""
    record.status = status
    record.seq += 1
    payload = {"status": status, **{k: v for k, v in data.items() if v is not None}}
    record.timeline.append(TimelineEvent(seq=record.seq, type="status", at=iso(now()), data=payload))


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
        raise InvalidInput(f"trigger_source: must be one of {', '.join(CALLER_TRIGGERS)} "
                           "(webhook, schedule, approval and the other sources are the server's own)")
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

    Raises NotFound (worker), Conflict (paused/archived/not committed, or an agent worker that
    needs setup: the reason), InvalidInput (worker in error, missing or bad inputs).
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


def _await_approval(ws: Workspace, record: RunRecord, manifest: Manifest, approval: Approval) -> None:
    ttl = (manifest.approvals.expires_hours * 3600 if manifest.approvals.expires_hours
           else ws.settings.approval_ttl_seconds)
    approval.expires_at = iso(parse_iso(approval.created_at, "created_at") + dt.timedelta(seconds=ttl))
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


# -- reads --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunQuery:
    worker_id: str | None = None
    statuses: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    before: tuple[str, str] | None = None
    limit: int = 50
    offset: int = 0


def parse_statuses(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    for v in values:
        if v not in STATUSES:
            raise InvalidInput(f"status: '{v[:40]}' is not one of {', '.join(STATUSES)}")
    return values


def matching(ws: Workspace, q: RunQuery) -> list[IndexEntry]:
    """Every index entry matching `q` (filters and cursor), newest first; no paging."""
    s = store(ws)
    source = s.entries_before(q.before, q.worker_id) if q.before else s.entries(q.worker_id)
    out = []
    for e in source:
        if q.statuses and e.status not in q.statuses:
            continue
        if q.until and e.created_at >= q.until:
            continue
        if q.since and e.created_at < q.since:
            break
        out.append(e)
    return out


def summary(ws: Workspace, e: IndexEntry) -> RunSummary:
    hooks = store(ws).hooks
    position = hooks.queue_position(e.id) if hooks is not None and e.status == "queued" else None
    return RunSummary(id=e.id, worker_id=e.worker_id, worker_name=e.worker_name, status=e.status,
                      trigger_source=e.trigger_source, created_at=e.created_at,
                      started_at=e.started_at, completed_at=e.completed_at,
                      duration_ms=e.duration_ms, error=e.error, error_code=e.error_code,
                      queue_position=position)


def list_runs(ws: Workspace, q: RunQuery) -> tuple[list[RunSummary], int]:
    if not q.statuses and not q.since and not q.until and not q.before:
        total = store(ws).count(q.worker_id)
        page = []
        for i, e in enumerate(store(ws).entries(q.worker_id)):
            if i >= q.offset + q.limit:
                break
            if i >= q.offset:
                page.append(e)
        return [summary(ws, e) for e in page], total
    found = matching(ws, q)
    return [summary(ws, e) for e in found[q.offset:q.offset + q.limit]], len(found)


DETAIL_LOG_LINES = 200  # log lines inlined in a run's detail; the rest via logs_url
_KINDS = {"text/markdown": "markdown", "text/csv": "csv", "application/json": "json"}


def _artifact_out(run_id: str, a: Artifact) -> ArtifactOut:
    kind = _KINDS.get(a.media_type) or ("text" if a.media_type.startswith("text/") else
                                        "image" if a.media_type.startswith("image/") else "file")
    return ArtifactOut(**{f: getattr(a, f) for f in Artifact.__struct_fields__}, run_id=run_id,
                       type=kind, relative_path=a.path,
                       download_url=f"/api/runs/{run_id}/artifacts/{a.id}/download")


def _output_schema(ws: Workspace, record: RunRecord) -> list[OutputField]:
    """The worker's declared outputs at the run's commit, with this run's values."""
    try:
        manifest, _ = committed_manifest(ws, record.worker_id, record.worker_sha)
    except (Conflict, InvalidInput, NotFound):
        return []  # the commit is gone (a rewritten history) or never had a valid manifest
    values = record.outputs or {}
    return [OutputField(name=f.name, type=f.type or f.kind, label=f.label or f.name.replace("_", " ").title(),
                        value=values.get(f.name))
            for f in manifest.exec.outputs]


def detail(ws: Workspace, run_id: str) -> RunDetail:
    s = store(ws)
    record = s.get(run_id)
    position = (s.hooks.queue_position(run_id) if s.hooks is not None and record.status == "queued"
                else None)
    lines = s.logs(run_id)
    return RunDetail(
        id=record.id, worker_id=record.worker_id, worker_name=record.worker_name,
        worker_sha=record.worker_sha[:7], status=record.status,
        trigger_source=record.trigger_source, trigger_ref=record.trigger_ref, runner="local",
        created_by=record.created_by, input=record.inputs, inputs=record.inputs,
        output=record.outputs, outputs=record.outputs, output_schema=_output_schema(ws, record),
        error=record.error, error_code=record.error_code, exit_code=record.exit_code,
        created_at=record.created_at, started_at=record.started_at,
        completed_at=record.completed_at, duration_ms=record.duration_ms, queue_position=position,
        approval=record.approval, approval_trail=record.approval,
        approval_of=record.approval_of,
        artifacts=[_artifact_out(record.id, a) for a in record.artifacts],
        tool_calls=record.tool_calls, transcript=[],
        logs=lines[:DETAIL_LOG_LINES], log_count=len(lines),
        logs_truncated=len(lines) > DETAIL_LOG_LINES, logs_url=f"/api/runs/{record.id}/logs",
        logs_stream_url=f"/api/runs/{record.id}/logs/stream", total_tokens=record.total_tokens,
        total_cost_usd=record.cost_usd, agent=record.agent,
        can_replay=record.status in ("completed", "failed"),
    )


def logs(ws: Workspace, run_id: str, level: str | None, limit: int) -> list[LogLine]:
    from floom_git.schemas.run import LEVELS

    lines = store(ws).logs(run_id)
    if level:
        if level not in LEVELS:
            raise InvalidInput(f"level: must be one of {', '.join(LEVELS)}")
        floor = LEVELS.index(level)
        lines = [ln for ln in lines if ln.level in LEVELS and LEVELS.index(ln.level) >= floor]
    return lines[:limit]


def artifact(ws: Workspace, run_id: str, artifact_id: str) -> tuple[Artifact, bytes]:
    s = store(ws)
    record = s.get(run_id)
    for a in record.artifacts:
        if a.id == artifact_id:
            data = s.read_file(run_id, f"artifacts/{a.path}")
            if data is None:
                break
            return a, data
    raise NotFound("Artifact not found")


def events_since(ws: Workspace, run_id: str, after: int) -> tuple[list[tuple[int, dict[str, Any]]], RunRecord]:
    """The run's numbered events after `after` (status changes, logs, decisions, and while an
    agent runs the passing ones: text as it arrives, turns and tool calls starting), in order."""
    s = store(ws)
    record = s.get(run_id)
    events: list[tuple[int, dict[str, Any]]] = []
    for t in record.timeline:
        if t.seq > after:
            events.append((t.seq, {"type": t.type, "run_id": run_id, **t.data}))
    if record.seq > after:
        for line in s.logs(run_id):
            if line.seq > after:
                data = {"type": "log", "run_id": run_id, "seq": line.seq, "level": line.level,
                        "message": line.message, "timestamp": line.timestamp}
                if line.event is not None:
                    data["event"] = line.event
                events.append((line.seq, data))
        for seq, passing in s.passing(run_id):
            if seq > after:
                events.append((seq, {**passing, "run_id": run_id}))
    events.sort(key=lambda item: item[0])
    return events, record


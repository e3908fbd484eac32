"""Runs as the API shows them: lists with filters and a stable cursor, a run's detail, its logs,
artifacts, numbered events and ZIP. Every view is derived from the run record (or its index
entry, services/run_index.py); reading never writes. The async functions at the end are what
handlers await: reads that touch git run in a thread."""

from __future__ import annotations

import asyncio
import io
import zipfile
from dataclasses import dataclass
from typing import Any

import msgspec

from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.schemas.run import (
    LEVELS,
    STATUSES,
    Artifact,
    ArtifactOut,
    IndexEntry,
    LogLine,
    OutputField,
    RunDetail,
    RunRecord,
    RunSummary,
)
from floom_git.services.run_inputs import committed_manifest
from floom_git.services.runs import get_run, store
from floom_git.services.workspaces import Workspace


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


def shared(source: msgspec.Struct, view: type[msgspec.Struct]) -> dict[str, Any]:
    """The fields of `source` that `view` shows under the same name: a view of a run is derived
    from its record (or index entry), never written out field by field."""
    return {f: getattr(source, f) for f in view.__struct_fields__ if hasattr(source, f)}


def _position(ws: Workspace, run_id: str, status: str) -> int | None:
    hooks = store(ws).hooks
    return hooks.queue_position(run_id) if hooks is not None and status == "queued" else None


def summary(ws: Workspace, e: IndexEntry) -> RunSummary:
    return RunSummary(**{**shared(e, RunSummary), "queue_position": _position(ws, e.id, e.status)})


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
    return ArtifactOut(**shared(a, Artifact), run_id=run_id,
                       type=kind, relative_path=a.path,
                       download_url=f"/api/runs/{run_id}/artifacts/{a.id}/download")


def _output_schema(ws: Workspace, record: RunRecord) -> list[OutputField]:
    """The worker's declared outputs at the run's commit, with this run's values."""
    try:
        manifest, _ = committed_manifest(ws, record.worker_id, record.worker_sha)
    except (Conflict, InvalidInput, NotFound):
        return []  # the commit is gone (a rewritten history) or never had a valid manifest
    values = record.outputs or {}
    return [OutputField(name=f.name, type=f.type or f.kind,
                        label=f.label or f.name.replace("_", " ").title(),
                        value=values.get(f.name))
            for f in manifest.exec.outputs]


def detail(ws: Workspace, run_id: str) -> RunDetail:
    s = store(ws)
    record = s.get(run_id)
    lines = s.logs(run_id)
    return RunDetail(**{
        **shared(record, RunDetail),
        "worker_sha": record.worker_sha[:7], "runner": "local",
        "input": record.inputs, "output": record.outputs,
        "output_schema": _output_schema(ws, record),
        "queue_position": _position(ws, run_id, record.status),
        "approval_trail": record.approval,
        "artifacts": [_artifact_out(record.id, a) for a in record.artifacts],
        "transcript": [], "logs": lines[:DETAIL_LOG_LINES], "log_count": len(lines),
        "logs_truncated": len(lines) > DETAIL_LOG_LINES, "logs_url": f"/api/runs/{record.id}/logs",
        "logs_stream_url": f"/api/runs/{record.id}/logs/stream",
        "total_cost_usd": record.cost_usd, "can_replay": record.status in ("completed", "failed"),
    })


def logs(ws: Workspace, run_id: str, level: str | None, limit: int) -> list[LogLine]:
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


def events_since(ws: Workspace, run_id: str,
                 after: int) -> tuple[list[tuple[int, dict[str, Any]]], RunRecord]:
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


def _archive(ws: Workspace, run_id: str) -> bytes:
    record = get_run(ws, run_id)
    s = store(ws)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("run.json", msgspec.json.format(msgspec.json.encode(record), indent=2))
        zf.writestr("outputs.json",
                    msgspec.json.format(msgspec.json.encode(record.outputs or {}), indent=2))
        zf.writestr("logs.ndjson", b"".join(msgspec.json.encode(x) + b"\n" for x in s.logs(run_id)))
        for a in record.artifacts:
            data = s.read_file(run_id, f"artifacts/{a.path}")
            if data is not None:
                zf.writestr(f"artifacts/{a.path}", data)
    return buf.getvalue()


# -- for handlers: the same reads, awaited ----------------------------------------------------
async def _off_loop(ws: Workspace, run_id: str, fn: Any, *args: Any) -> Any:
    """Reads of a finished run touch git: in a thread. A live run's are in memory."""
    if run_id in store(ws).live:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


async def get(ws: Workspace, run_id: str) -> RunDetail:
    """The run's detail; NotFound."""
    result: RunDetail = await _off_loop(ws, run_id, detail, ws, run_id)
    return result


async def read_logs(ws: Workspace, run_id: str, level: str | None, limit: int) -> list[LogLine]:
    """The run's log lines at `level` or above, the first `limit`; NotFound, InvalidInput."""
    result: list[LogLine] = await _off_loop(ws, run_id, logs, ws, run_id, level, limit)
    return result


async def read_events(ws: Workspace, run_id: str,
                      after: int) -> tuple[list[tuple[int, dict[str, Any]]], RunRecord]:
    """events_since, awaited; NotFound."""
    result: tuple[list[tuple[int, dict[str, Any]]], RunRecord] = await _off_loop(
        ws, run_id, events_since, ws, run_id, after)
    return result


async def read_artifact(ws: Workspace, run_id: str, artifact_id: str) -> tuple[Artifact, bytes]:
    """An artifact and its bytes; NotFound."""
    return await asyncio.to_thread(artifact, ws, run_id, artifact_id)


async def archive(ws: Workspace, run_id: str) -> bytes:
    """The run as a ZIP: run.json, outputs.json, logs.ndjson and its artifacts; NotFound."""
    return await asyncio.to_thread(_archive, ws, run_id)

"""Runs and approvals routes: trigger, list, detail, cancel, logs, SSE streams, downloads,
approve/reject."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from floom_git.errors import InvalidInput
from floom_git.http import content, sse, wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.http.keys import ENGINE
from floom_git.schemas import run as schema
from floom_git.services import approvals, run_views, runs
from floom_git.services.workspaces import Workspace

STATUS_LIST = "(" + "|".join(schema.STATUSES) + ")"
CURSOR = "before_id goes only with before_created_at"
RUN_FILTERS = (  # the query of GET /runs and /runs/export.csv
    ("worker_id", "string", "only runs of this worker"),
    ("status", "string", "comma list of statuses",
     {"pattern": f"^{STATUS_LIST}(,{STATUS_LIST})*$"}),
    ("since", "string", "created at or after (ISO-8601)", {"format": "date-time"}),
    ("until", "string", "created before (ISO-8601)", {"format": "date-time"}),
    ("before_created_at", "string", "cursor: runs created before this timestamp",
     {"format": "date-time"}),
    ("before_id", "string", "cursor: with before_created_at, the id at that timestamp"))
LOG_TYPES = ("application/x-ndjson", "application/json")
LOG_FIELDS = (
    "seq",
    "level",
    "message",
    "timestamp",
    "event",
)  # a /logs/stream frame  # the seed's NDJSON unless JSON is asked
T = TypeVar("T")


def webhook_url(request: web.Request, worker_id: str, token: str) -> str:
    return f"{request.scheme}://{request.host}/api/webhooks/{worker_id}?token={token}"


async def attached(request: web.Request) -> Workspace:
    ws = workspace(request)
    await request.app[ENGINE].attach(ws)
    return ws


async def decode_optional(request: web.Request, type_: type[T]) -> T:
    """Decode a JSON body, or the type's defaults when the body is empty."""
    return await wire.decode_optional(request, type_, settings(request).max_json_bytes)


# -- trigger, list, detail ----------------------------------------------------------------------
async def create_run(request: web.Request) -> web.Response:
    ws = await attached(request)
    body = await decode_optional(request, schema.RunCreate)
    record = runs.create_run(ws, request.match_info["id"], body.inputs,
                             trigger_source=runs.caller_trigger_source(body.trigger_source),
                             actor=actor(request))
    return wire.json(schema.RunCreated(status=record.status, run_id=record.id))


def _iso_query(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    return runs.iso(runs.parse_iso(raw, name)) if raw else None


def run_query(
    request: web.Request, max_limit: int = 200, default_limit: int = 50
) -> run_views.RunQuery:
    before_at = _iso_query(request, "before_created_at")
    before_id = request.query.get("before_id") or None
    if before_id and not before_at:
        raise InvalidInput("before_id: pass it together with before_created_at")
    return run_views.RunQuery(
        worker_id=request.query.get("worker_id") or None,
        statuses=run_views.parse_statuses(request.query.get("status")),
        since=_iso_query(request, "since"), until=_iso_query(request, "until"),
        before=(before_at, before_id or "") if before_at else None,
        limit=wire.q_limit(request, default_limit, max_limit),
        offset=wire.q_int(request, "offset", 0, 0),
    )


async def list_runs(request: web.Request) -> web.Response:
    ws = workspace(request)
    query = run_query(request)
    # The newest runs and the count are final before a cold start has read older records.
    plain = not (query.worker_id or query.statuses or query.since or query.until or query.before)
    await request.app[ENGINE].attach(ws, query.offset + query.limit if plain else None)
    items, total = run_views.list_runs(ws, query)
    return wire.json(items, headers={"X-Total-Count": str(total)})


async def get_run(request: web.Request) -> web.Response:
    ws = await attached(request)
    rid = request.match_info["id"]
    return wire.json(await run_views.get(ws, rid))


async def cancel_run(request: web.Request) -> web.Response:
    ws = await attached(request)
    rid = request.match_info["id"]
    status = runs.cancel(ws, rid, actor(request))
    return wire.json(schema.CancelResult(status=status, run_id=rid))


async def run_logs(request: web.Request) -> web.Response:
    ws = await attached(request)
    rid = request.match_info["id"]
    lines = await run_views.read_logs(ws, rid, request.query.get("level") or None,
                                      wire.q_limit(request, 1000, 100_000))
    if wire.negotiate(request, LOG_TYPES) == "application/json":
        return wire.json(lines)
    body = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
    return content.user_file(body, "application/x-ndjson")


# -- streams ------------------------------------------------------------------------------------
def _fetcher(ws: Workspace, rid: str, frames_of: Any) -> sse.Fetch:
    async def fetch(after: int) -> tuple[list[sse.Frame], bool, int]:
        events, record = await run_views.read_events(ws, rid, after)
        return (*frames_of(events, record), record.seq)

    return fetch


def _waiter(ws: Workspace, rid: str) -> sse.Wait:
    store = ws.runs

    async def wait(position: int, timeout: float) -> None:
        await store.wait(rid, position, timeout)

    return wait


async def run_events(request: web.Request) -> web.StreamResponse:
    """status | log | approval_decided | close, as JSON with a `type`; ends when the run ends."""
    ws = await attached(request)
    rid = request.match_info["id"]

    def frames(
        events: list[tuple[int, dict[str, Any]]], record: schema.RunRecord
    ) -> tuple[list[sse.Frame], bool]:
        out = [sse.Frame(seq, data) for seq, data in events]
        done = record.status in schema.TERMINAL
        if done:
            out.append(
                sse.Frame(record.seq + 1, {"type": "close", "run_id": rid, "status": record.status})
            )
        return out, done

    return await sse.stream(request, _fetcher(ws, rid, frames), _waiter(ws, rid),
                            settings(request).sse_keepalive_seconds)


async def run_log_stream(request: web.Request) -> web.StreamResponse:
    """Log lines only (ids are the lines' seq); ends when the run's process has ended."""
    ws = await attached(request)
    rid = request.match_info["id"]

    def frames(
        events: list[tuple[int, dict[str, Any]]], record: schema.RunRecord
    ) -> tuple[list[sse.Frame], bool]:
        out = [sse.Frame(seq, {k: data[k] for k in LOG_FIELDS if k in data})
               for seq, data in events if data["type"] == "log"]
        if record.ended:
            out.append(sse.Frame(record.seq + 1, {"status": record.status}, event="close"))
        return out, record.ended

    return await sse.stream(request, _fetcher(ws, rid, frames), _waiter(ws, rid),
                            settings(request).sse_keepalive_seconds)


def _agent_part(data: dict[str, Any]) -> dict[str, Any] | None:
    """An agent's step as an AI-SDK part: text-delta, tool-call (asked), tool-result (done)."""
    kind = data["type"]
    if kind == "text_delta":
        return {"type": "text-delta", "delta": data["text"]}
    if kind == "tool_call_start":
        return {"type": "tool-call", "id": data["id"], "name": data["name"],
                "arguments": data["arguments"], "connection_id": data.get("connection_id")}
    event = data.get("event") if kind == "log" else None
    if event is not None and event.get("type") == "tool_call":
        return {"type": "tool-result", **{k: event.get(k) for k in (
            "id", "name", "result", "error", "error_code", "duration_ms", "connection_id")}}
    return None


async def run_parts(request: web.Request) -> web.StreamResponse:
    """The run as parts: step-start (queued, running), text (log lines), an agent's text-delta,
    tool-call and tool-result, finish."""
    ws = await attached(request)
    rid = request.match_info["id"]

    def frames(
        events: list[tuple[int, dict[str, Any]]], record: schema.RunRecord
    ) -> tuple[list[sse.Frame], bool]:
        out = []
        for seq, data in events:
            part = _agent_part(data)
            if part is not None:
                out.append(sse.Frame(seq, part))
            elif data["type"] == "log":
                out.append(
                    sse.Frame(
                        seq, {"type": "text", "text": data["message"], "level": data["level"]}
                    )
                )
            elif data["type"] == "status" and data["status"] in ("queued", "running"):
                out.append(sse.Frame(seq, {"type": "step-start", "status": data["status"]}))
            elif data["type"] == "status":
                out.append(sse.Frame(seq, {"type": "finish", "status": data["status"],
                                           "error": record.error, "error_code": record.error_code,
                                           "outputs": record.outputs}))
                return out, True
        return out, False

    return await sse.stream(request, _fetcher(ws, rid, frames), _waiter(ws, rid),
                            settings(request).sse_keepalive_seconds)


# -- downloads ----------------------------------------------------------------------------------
async def download_run(request: web.Request) -> web.Response:
    ws = await attached(request)
    rid = request.match_info["id"]
    data = await run_views.archive(ws, rid)
    return content.user_file(data, "application/zip", f"{rid}.zip")


async def download_artifact(request: web.Request) -> web.Response:
    ws = await attached(request)
    rid = request.match_info["id"]
    art, data = await run_views.read_artifact(ws, rid, request.match_info["artifact_id"])
    return content.user_file(data, art.media_type, art.name)


# -- approvals ----------------------------------------------------------------------------------
async def _approve(request: web.Request, ws: Workspace, rid: str) -> web.Response:
    body = await decode_optional(request, schema.ApproveBody)
    original, follow = approvals.approve(ws, rid, body, actor(request))
    assert original.approval is not None
    going_on = follow or original  # an agent's run itself goes on after its approval
    return wire.json(schema.Decision(status="approved", run_id=going_on.id,
                                     approval_id=original.approval.id,
                                     follow_up_run_id=follow.id if follow else None))


async def _reject(request: web.Request, ws: Workspace, rid: str) -> web.Response:
    body = await decode_optional(request, schema.RejectBody)
    record = approvals.reject(ws, rid, body, actor(request))
    assert record.approval is not None
    return wire.json(schema.Decision(status="rejected", run_id=rid, approval_id=record.approval.id))


async def approve_run(request: web.Request) -> web.Response:
    ws = await attached(request)
    return await _approve(request, ws, request.match_info["id"])


async def reject_run(request: web.Request) -> web.Response:
    ws = await attached(request)
    return await _reject(request, ws, request.match_info["id"])


async def approve_by_id(request: web.Request) -> web.Response:
    ws = await attached(request)
    return await _approve(
        request, ws, approvals.approval_run_id(ws, request.match_info["approval_id"])
    )


async def reject_by_id(request: web.Request) -> web.Response:
    ws = await attached(request)
    return await _reject(
        request, ws, approvals.approval_run_id(ws, request.match_info["approval_id"])
    )


async def list_approvals(request: web.Request) -> web.Response:
    ws = await attached(request)
    status = wire.q_choice(request, "status", ("pending", "approved", "rejected", "expired",
                                               "cancelled", "all"), "pending")
    items, total = approvals.list_approvals(
        ws, None if status == "all" else status, request.query.get("run_id") or None,
        wire.q_limit(request, 50, 500), wire.q_int(request, "offset", 0, 0))
    return wire.json(items, headers={"X-Total-Count": str(total)})


async def count_approvals(request: web.Request) -> web.Response:
    ws = await attached(request)
    return wire.json(schema.ApprovalCount(pending=approvals.pending_count(ws)))

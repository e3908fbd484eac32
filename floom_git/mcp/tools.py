"""The workspace MCP server's built-in tools. Each has a name, a description, a msgspec Struct of
its arguments (whose JSON schema is the tool's input schema), the permission of the REST route it
mirrors (read: viewer, write: member) and a function over the same service functions those REST
handlers call, so MCP and REST share every rule."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from floom_git.config import Settings
from floom_git.errors import InvalidInput
from floom_git.schemas.api import WorkerCreate as SaveWorkerArgs
from floom_git.schemas.issue import CommentCreate, IssueCreate, IssueUpdate
from floom_git.schemas.run import ApproveBody, RejectBody, RunRecord
from floom_git.services import approvals, contexts, issues, run_views, runs, worker_views, workers
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
MAX_WAIT = 3600.0
MAX_PROGRESS_TEXT = 500


@dataclass(frozen=True)
class Call:
    """What a tool call acts with: the workspace, the caller (with its role there), settings,
    the run engine's attach, and a progress reporter (a no-op when the client asked for none)."""

    ws: Workspace
    actor: Actor
    settings: Settings
    attach: Callable[[Workspace], Awaitable[object]]
    progress: Progress


@dataclass(frozen=True)
class BuiltinTool:
    name: str
    description: str
    args: type[msgspec.Struct]
    perm: str  # read | write
    fn: Callable[[Call, Any], Awaitable[Any]]


def _desc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ListWorkersArgs(Args, kw_only=True):
    status: Annotated[str | None,
                      _desc("ready, paused, archived, error or missing_connection")] = None
    q: Annotated[str | None, _desc("substring of id, title or description")] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class WorkerArgs(Args, kw_only=True):
    worker_id: Annotated[str, _desc("the worker's id (its folder name)")]


class RunWorkerArgs(Args, kw_only=True):
    worker_id: Annotated[str, _desc("the worker's id")]
    inputs: Annotated[dict[str, Any], _desc("input values, as the worker declares them")] = {}
    wait: Annotated[bool, _desc("wait for the result (progress is reported while it runs)")] = True
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_WAIT)] = 300.0


class ListRunsArgs(Args, kw_only=True):
    worker_id: str | None = None
    status: Annotated[str | None, _desc("comma list of statuses")] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class GetRunArgs(Args, kw_only=True):
    run_id: str
    include_logs: bool = False


class RunLogsArgs(Args, kw_only=True):
    run_id: str
    level: Annotated[str | None,
                     _desc("minimum level: debug, info, warning, error, critical")] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500


class ListApprovalsArgs(Args, kw_only=True):
    status: Literal["pending", "approved", "rejected", "expired", "cancelled", "all"] = "pending"
    run_id: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class ResolveApprovalArgs(Args, kw_only=True):
    decision: Literal["approve", "reject"]
    approval_id: Annotated[str | None, _desc("the approval (apr_...); or give run_id")] = None
    run_id: Annotated[str | None, _desc("the run waiting for approval; or give approval_id")] = None
    edited_output: Annotated[dict[str, Any] | None,
                             _desc("approve with these outputs instead")] = None
    annotation: Any = None
    reason: str | None = None


class NoArgs(Args, kw_only=True):
    pass


class ReadContextArgs(Args, kw_only=True):
    name: Annotated[str, _desc("the context pack")]
    path: Annotated[str | None,
                    _desc("a file of the pack; without it, the pack's file list")] = None
    path_prefix: Annotated[str | None, _desc("list only files under this prefix")] = None


class ListIssuesArgs(Args, kw_only=True):
    status: Literal["open", "closed"] | None = None
    label: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class CommentIssueArgs(Args, kw_only=True):
    issue_id: Annotated[str, _desc("ISSUE-NNNN")]
    body: str


class CloseIssueArgs(Args, kw_only=True):
    issue_id: Annotated[str, _desc("ISSUE-NNNN")]
    comment: Annotated[str | None, _desc("a closing comment")] = None


# -- helpers ----------------------------------------------------------------------------------
def _result(record: RunRecord, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": record.id, "worker_id": record.worker_id,
                           "status": record.status, "outputs": record.outputs}
    if record.error:
        out.update(error=record.error, error_code=record.error_code)
    if record.approval is not None and record.status == "pending_approval":
        out["approval"] = {"id": record.approval.id, "label": record.approval.label,
                           "preview": record.approval.preview}
    return {**out, **extra}


def _progress_text(event: dict[str, Any]) -> str | None:
    if event.get("type") == "log":
        return f"[{event.get('level')}] {event.get('message')}"[:MAX_PROGRESS_TEXT]
    if event.get("type") == "status":
        return f"status: {event.get('status')}"
    return None


async def run_and_wait(call: Call, worker_id: str, inputs: dict[str, Any], *, wait: bool = True,
                       timeout: float = 300.0) -> dict[str, Any]:
    """Trigger a run (as POST /workers/{id}/runs does) and, with `wait`, report its status
    changes and log lines as progress until it ends or waits for approval. After `timeout` the
    run keeps going and the result says `timed_out`."""
    await call.attach(call.ws)
    record = runs.create_run(call.ws, worker_id, inputs, trigger_source="mcp", actor=call.actor)
    if not wait:
        return _result(record)
    store = call.ws.runs
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = 0
    while True:
        events, current = await run_views.read_events(call.ws, record.id, seen)
        for seq, event in events:
            seen = max(seen, seq)
            text = _progress_text(event)
            if text is not None:
                await call.progress(seq, None, text)
        if current.ended:
            return _result(current)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return _result(current, timed_out=True)
        await store.wait(record.id, seen, min(remaining, 15.0))


# -- the tools ----------------------------------------------------------------------------------
def _viewer(call: Call) -> worker_views.Viewer:
    return worker_views.Viewer(role=call.actor.role)


async def list_workers(call: Call, a: ListWorkersArgs) -> Any:
    items, total = worker_views.list_workers(call.ws, workers.ListQuery(
        limit=a.limit, offset=a.offset, status=a.status, q=a.q, shape="list"), _viewer(call))
    return {"workers": items, "total": total}


async def get_worker(call: Call, a: WorkerArgs) -> Any:
    return worker_views.detail(call.ws, a.worker_id, _viewer(call))


async def save_worker(call: Call, a: SaveWorkerArgs) -> Any:
    worker_id, created = await workers.save(call.ws, call.actor, a, call.settings.max_file_bytes)
    return {"created": created, "worker": worker_views.detail(call.ws, worker_id, _viewer(call))}


async def run_worker(call: Call, a: RunWorkerArgs) -> Any:
    return await run_and_wait(call, a.worker_id, a.inputs, wait=a.wait, timeout=a.timeout_seconds)


async def list_runs(call: Call, a: ListRunsArgs) -> Any:
    await call.attach(call.ws)
    items, total = run_views.list_runs(
        call.ws,
        run_views.RunQuery(
            worker_id=a.worker_id,
            statuses=run_views.parse_statuses(a.status),
            limit=a.limit,
            offset=a.offset,
        ),
    )
    return {"runs": items, "total": total}


async def get_run(call: Call, a: GetRunArgs) -> Any:
    await call.attach(call.ws)
    detail = await run_views.get(call.ws, a.run_id)
    return detail if a.include_logs else msgspec.structs.replace(detail, logs=[])


async def get_run_logs(call: Call, a: RunLogsArgs) -> Any:
    await call.attach(call.ws)
    lines = await run_views.read_logs(call.ws, a.run_id, a.level, a.limit)
    return {"run_id": a.run_id, "logs": lines}


async def list_approvals(call: Call, a: ListApprovalsArgs) -> Any:
    await call.attach(call.ws)
    items, total = approvals.list_approvals(call.ws, None if a.status == "all" else a.status,
                                            a.run_id, a.limit, a.offset)
    return {"approvals": items, "total": total}


async def resolve_approval(call: Call, a: ResolveApprovalArgs) -> Any:
    await call.attach(call.ws)
    if (a.approval_id is None) == (a.run_id is None):
        raise InvalidInput("give exactly one of approval_id and run_id")
    run_id = a.run_id or approvals.approval_run_id(call.ws, a.approval_id or "")
    if a.decision == "approve":
        original, follow = approvals.approve(call.ws, run_id, ApproveBody(
            edited_output=a.edited_output, annotation=a.annotation, reason=a.reason), call.actor)
        return {"status": "approved", "run_id": original.id,
                "follow_up_run_id": follow.id if follow is not None else None}
    record = approvals.reject(call.ws, run_id, RejectBody(reason=a.reason, annotation=a.annotation),
                              call.actor)
    return {"status": "rejected", "run_id": record.id}


async def list_contexts(call: Call, a: NoArgs) -> Any:
    return {"contexts": await contexts.list_contexts(call.ws)}


async def read_context(call: Call, a: ReadContextArgs) -> Any:
    if a.path is None:
        return await contexts.detail(call.ws, a.name, a.path_prefix)
    data, ctype = await contexts.read_file(call.ws, a.name, a.path)
    try:
        return {"name": a.name, "path": a.path, "content_type": ctype, "encoding": "utf-8",
                "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"name": a.name, "path": a.path, "content_type": ctype, "encoding": "base64",
                "content": base64.b64encode(data).decode()}


async def list_issues(call: Call, a: ListIssuesArgs) -> Any:
    return await issues.list_issues(call.ws, status=a.status, label=a.label, limit=a.limit,
                                    offset=a.offset)


async def create_issue(call: Call, a: IssueCreate) -> Any:
    issue, _ = await issues.create(call.ws, call.actor, a)
    return issue


async def comment_issue(call: Call, a: CommentIssueArgs) -> Any:
    return await issues.comment(call.ws, call.actor, issues.check_id(a.issue_id),
                                CommentCreate(body=a.body))


async def close_issue(call: Call, a: CloseIssueArgs) -> Any:
    issue_id = issues.check_id(a.issue_id)
    if a.comment:
        await issues.comment(call.ws, call.actor, issue_id, CommentCreate(body=a.comment))
    return await issues.update(call.ws, call.actor, issue_id, IssueUpdate(status="closed"))


BUILTIN: list[BuiltinTool] = [
    BuiltinTool("list_workers", "List the workspace's workers (id, title, status, trigger).",
                ListWorkersArgs, "read", list_workers),
    BuiltinTool("get_worker", "A worker's detail: manifest, inputs, outputs, files, missing "
                "secrets and connections.", WorkerArgs, "read", get_worker),
    BuiltinTool("save_worker", "Create a worker from a manifest (worker_yml or manifest) plus "
                "files, or replace all files of the worker the manifest names.",
                SaveWorkerArgs, "write", save_worker),
    BuiltinTool("run_worker", "Trigger a run of a worker and wait for its result; status "
                "changes and log lines arrive as progress notifications.",
                RunWorkerArgs, "write", run_worker),
    BuiltinTool("list_runs", "Recent runs, newest first.", ListRunsArgs, "read", list_runs),
    BuiltinTool("get_run", "A run's detail: status, inputs, outputs, error, approval.",
                GetRunArgs, "read", get_run),
    BuiltinTool("get_run_logs", "A run's log lines.", RunLogsArgs, "read", get_run_logs),
    BuiltinTool("list_approvals", "Approvals (default: pending ones).", ListApprovalsArgs, "read",
                list_approvals),
    BuiltinTool("resolve_approval", "Approve (optionally with edited outputs) or reject a run "
                "waiting for approval.", ResolveApprovalArgs, "write", resolve_approval),
    BuiltinTool("list_contexts", "The context packs (knowledge) of the workspace.", NoArgs, "read",
                list_contexts),
    BuiltinTool("read_context", "A context pack's files, or one file's content.", ReadContextArgs,
                "read", read_context),
    BuiltinTool("list_issues", "Workspace issues.", ListIssuesArgs, "read", list_issues),
    BuiltinTool("create_issue", "Open a workspace issue (optionally bound to a worker, context "
                "or run).", IssueCreate, "write", create_issue),
    BuiltinTool("comment_issue", "Add a comment to an issue.", CommentIssueArgs, "write",
                comment_issue),
    BuiltinTool("close_issue", "Close an issue, optionally with a comment.", CloseIssueArgs,
                "write", close_issue),
]

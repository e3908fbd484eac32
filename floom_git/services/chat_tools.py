"""The workspace agent's tools: workers, runs, contexts and issues through the same service
functions the REST handlers call, acting as the person chatting with their role in the
workspace. Read tools need the viewer role, write tools (run a worker, the issue tools that
write) the member role, as the matching REST routes do: a viewer's chat is offered only the
read tools, and each write tool checks the role again when called."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from floom_git.agents.tools import Tool, ToolError, struct_tool
from floom_git.errors import FloomError
from floom_git.schemas.issue import CommentCreate, IssueCreate, IssueUpdate
from floom_git.services import contexts, issues, run_views, runs, worker_views, workers
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace

TRIGGER_SOURCE = "workspace-agent"  # the reference's name for runs its agent starts
MAX_WAIT = 600.0
MAX_TEXT = 50_000  # characters of a context file handed to the model at once


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ListWorkersArgs(Args, kw_only=True):
    status: Annotated[str | None, _doc("ready, needs_setup, paused, archived or error")] = None
    q: Annotated[str | None, _doc("a substring of the id, title or description")] = None


class WorkerArgs(Args, kw_only=True):
    worker_id: Annotated[str, _doc("the worker's id")]


class RunWorkerArgs(Args, kw_only=True):
    worker_id: Annotated[str, _doc("the worker's id")]
    inputs: Annotated[dict[str, Any], _doc("input values, as the worker declares them")] = {}
    wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT, description=(
        "how long to wait for the run to end (0: do not wait)"))] = 120.0


class ListRunsArgs(Args, kw_only=True):
    worker_id: str | None = None
    status: Annotated[str | None, _doc("comma list: queued, running, pending_approval, "
                                       "completed, failed, cancelled")] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class RunArgs(Args, kw_only=True):
    run_id: Annotated[str, _doc("run_...")]


class RunLogsArgs(Args, kw_only=True):
    run_id: str
    level: Annotated[str | None, _doc("minimum level: debug, info, warning, error")] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=2000)] = 200


class NoArgs(Args, kw_only=True):
    pass


class ReadContextArgs(Args, kw_only=True):
    name: Annotated[str, _doc("the context pack")]
    path: Annotated[str | None, _doc("a file of the pack; without it, the list of its files")] = (
        None
    )


class IssuesListArgs(Args, kw_only=True):
    status: Literal["open", "closed"] | None = None
    label: str | None = None


class IssuesCreateArgs(Args, kw_only=True):
    title: str
    body: str = ""
    labels: list[str] = []
    asset_type: Annotated[str | None, _doc("worker, context or run, with asset_id")] = None
    asset_id: str | None = None


class IssuesCommentArgs(Args, kw_only=True):
    id: Annotated[str, _doc("ISSUE-NNNN")]
    body: str


class IssuesCloseArgs(Args, kw_only=True):
    id: Annotated[str, _doc("ISSUE-NNNN")]
    reopen: Annotated[bool, _doc("open it again instead")] = False
    comment: str | None = None


@dataclass(frozen=True)
class ChatContext:
    """Who the tools act for and where."""

    ws: Workspace
    actor: Actor


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _run(record: Any) -> dict[str, Any]:
    out = {"run_id": record.id, "worker_id": record.worker_id, "status": record.status,
           "outputs": record.outputs, "error": record.error, "error_code": record.error_code}
    if record.status == "pending_approval" and record.approval is not None:
        out["approval"] = {"id": record.approval.id, "label": record.approval.label}
    return out


async def _off_loop_unless_live(
    ws: Workspace, run_id: str, fn: Callable[..., Any], *args: Any
) -> Any:
    """Reads of a finished run touch git: off the event loop (as the REST handlers do)."""
    if run_id in ws.runs.live:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def chat_tools(ctx: ChatContext) -> list[Tool]:
    """The tools `ctx.actor` may use in `ctx.ws`: read tools always, write tools for members."""
    ws, actor = ctx.ws, ctx.actor
    viewer = worker_views.Viewer(role=actor.role)

    async def list_workers(a: ListWorkersArgs) -> Any:
        items, total = worker_views.list_workers(ws, workers.ListQuery(
            limit=200, status=a.status, q=a.q, shape="list"), viewer)
        return {"total": total, "workers": [
            {"id": w.id, "name": w.name, "description": w.description, "status": w.status,
             "error": w.error, "mode": w.mode, "triggers": w.triggers,
             "last_run": _plain(w.last_run) if w.last_run else None} for w in items]}

    async def get_worker(a: WorkerArgs) -> Any:
        detail = _plain(worker_views.detail(ws, a.worker_id, viewer))
        for bulky in ("files", "manifest_yaml", "config", "recent_runs", "stats"):
            detail.pop(bulky, None)
        return detail

    async def run_worker(a: RunWorkerArgs) -> Any:
        record = runs.create_run(ws, a.worker_id, a.inputs, trigger_source=TRIGGER_SOURCE,
                                 actor=actor)
        store = ws.runs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + a.wait_seconds
        while not record.ended and loop.time() < deadline:
            await store.wait(record.id, record.seq, deadline - loop.time())
            record = store.get(record.id)
        return {**_run(record), "waited": not record.ended and a.wait_seconds > 0}

    async def list_runs(a: ListRunsArgs) -> Any:
        items, total = run_views.list_runs(ws, run_views.RunQuery(
            worker_id=a.worker_id, statuses=run_views.parse_statuses(a.status), limit=a.limit))
        return {"total": total, "runs": _plain(items)}

    async def get_run(a: RunArgs) -> Any:
        detail = _plain(await _off_loop_unless_live(ws, a.run_id, run_views.detail, ws, a.run_id))
        detail["logs"] = detail["logs"][-20:]  # the rest: get_run_logs
        return detail

    async def get_run_logs(a: RunLogsArgs) -> Any:
        lines = await _off_loop_unless_live(
            ws, a.run_id, run_views.logs, ws, a.run_id, a.level, a.limit
        )
        return {"run_id": a.run_id, "logs": [
            {"level": x.level, "message": x.message, "timestamp": x.timestamp} for x in lines]}

    async def list_contexts(a: NoArgs) -> Any:
        return {"contexts": _plain(await contexts.list_contexts(ws))}

    async def read_context(a: ReadContextArgs) -> Any:
        if a.path is None:
            detail = await contexts.detail(ws, a.name)
            return {"name": a.name, "description": detail.description,
                    "files": [{"path": f.path, "size": f.size} for f in detail.files]}
        data, ctype = await contexts.read_file(ws, a.name, a.path)
        text = data.decode("utf-8", errors="replace")
        return {"name": a.name, "path": a.path, "content_type": ctype,
                "content": text[:MAX_TEXT], "truncated": len(text) > MAX_TEXT}

    async def issues_list(a: IssuesListArgs) -> Any:
        found = await issues.list_issues(ws, status=a.status, label=a.label)
        return {"ok": True, "count": found.total, "issues": _plain(found.issues)}

    async def issues_create(a: IssuesCreateArgs) -> Any:
        issue, _ = await issues.create(ws, actor, IssueCreate(
            title=a.title, body=a.body, labels=a.labels, asset_type=a.asset_type,
            asset_id=a.asset_id, source=TRIGGER_SOURCE))
        return {"ok": True, "issue": _plain(issue)}

    async def issues_comment(a: IssuesCommentArgs) -> Any:
        comment = await issues.comment(ws, actor, issues.check_id(a.id), CommentCreate(body=a.body))
        return {"ok": True, "comment": _plain(comment)}

    async def issues_close(a: IssuesCloseArgs) -> Any:
        issue_id = issues.check_id(a.id)
        if a.comment:
            await issues.comment(ws, actor, issue_id, CommentCreate(body=a.comment))
        issue = await issues.update(ws, actor, issue_id,
                                    IssueUpdate(status="open" if a.reopen else "closed"))
        return {"ok": True, "issue": _plain(issue)}

    read: list[tuple[str, str, type[Args], Callable[[Any], Awaitable[Any]]]] = [
        ("list_workers", ("List the workspace's workers: id, name, status (needs_setup and error "
         "come with the reason), mode (script or agent), triggers, last run."),
         ListWorkersArgs, list_workers),
        ("get_worker", ("A worker's detail: description, inputs, outputs, triggers, its SKILL.md "
         "or run.py, missing secrets."), WorkerArgs, get_worker),
        ("list_runs", "Recent runs, newest first.", ListRunsArgs, list_runs),
        ("get_run", ("A run's detail: status, inputs, outputs, error, tool calls, approval, "
         "its last log lines."), RunArgs, get_run),
        ("get_run_logs", "A run's log lines.", RunLogsArgs, get_run_logs),
        ("list_contexts", "The workspace's context packs (its knowledge).", NoArgs, list_contexts),
        ("read_context", "The files of a context pack, or the text of one of them.",
         ReadContextArgs, read_context),
        ("issues_list", "The workspace's issues.", IssuesListArgs, issues_list),
    ]
    write: list[tuple[str, str, type[Args], Callable[[Any], Awaitable[Any]]]] = [
        ("run_worker", ("Start a run of a worker with inputs and wait for it to end (or to wait "
         "for an approval); answers its status, outputs or error."), RunWorkerArgs, run_worker),
        ("issues_create", "Open an issue (optionally bound to a worker, context or run).",
         IssuesCreateArgs, issues_create),
        ("issues_comment", "Comment on an issue.", IssuesCommentArgs, issues_comment),
        ("issues_close", "Close an issue (or reopen it), optionally with a comment.",
         IssuesCloseArgs, issues_close),
    ]
    offered = read + (write if actor.can("member") else [])
    writes = {name for name, *_ in write}
    return [struct_tool(name, text, args, _guarded(actor, name in writes, fn))
            for name, text, args, fn in offered]


def _guarded(actor: Actor, writes: bool, fn: Callable[[Any], Awaitable[Any]]
             ) -> Callable[[Any], Awaitable[Any]]:
    """`fn` with the caller's role checked (writes need member) and domain errors (not found,
    invalid, conflict) handed to the model as the tool's error, as REST would answer them."""

    async def call(args: Any) -> Any:
        if writes and not actor.can("member"):
            raise ToolError(f"your role in this workspace ({actor.role}) cannot change anything")
        try:
            return await fn(args)
        except FloomError as exc:
            raise ToolError(exc.message) from None

    return call

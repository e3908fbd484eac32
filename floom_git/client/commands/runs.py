"""`run WORKER` (start, stream the logs live, print the outputs, exit with the run's status) and
`runs list|show|logs|cancel`."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any

from floom_git.client.commands import Ctx, command, group, json_object, outputs_of, query, seg
from floom_git.client.commands.workers import declared_inputs, worker_path
from floom_git.client.errors import ERROR, OK, RUN_EXIT, ClientError
from floom_git.client.output import size

LEVELS = ("debug", "info", "warning", "error", "critical")
STOPS = ("completed", "failed", "cancelled", "pending_approval")  # no more logs after these
RECONNECTS = 5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = command(sub, "run", run_worker, "run a worker: stream its logs, print its outputs, exit "
                  "0 completed / 3 failed / 4 cancelled / 5 waiting for approval")
    run.add_argument("worker_id", metavar="WORKER")
    run.add_argument("--input", "-i", action="append", default=[], metavar="KEY=VALUE",
                     help="an input value (repeatable; converted to the declared type)")
    run.add_argument("--input-file", action="append", default=[], type=Path, metavar="FILE",
                     help="a JSON object of inputs ('-' reads stdin); --input values win")
    run.add_argument("--no-wait", action="store_true", help="print the run id and return at once")
    runs = group(sub, "runs", "list, inspect, read the logs of and cancel runs")
    ls = command(runs, "list", list_runs, "recent runs, newest first")
    ls.add_argument("--worker", default=None, help="only runs of this worker")
    ls.add_argument("--status", default=None, help="comma list, e.g. failed,cancelled")
    ls.add_argument("--limit", type=int, default=20)
    show = command(runs, "show", show_run, "one run: status, inputs, outputs, error, approval")
    show.add_argument("run_id", metavar="RUN")
    logs = command(runs, "logs", run_logs, "a run's log lines (--follow streams until it ends)")
    logs.add_argument("run_id", metavar="RUN")
    logs.add_argument("-f", "--follow", action="store_true", help="stream new lines live")
    logs.add_argument("--level", default=None, choices=LEVELS, help="the least level to show")
    cancel = command(runs, "cancel", cancel_run, "cancel a queued or running run")
    cancel.add_argument("run_id", metavar="RUN")


def run_path(run_id: str) -> str:
    return f"/runs/{seg(run_id)}"


# -- inputs -----------------------------------------------------------------------------------
def _coerce(key: str, raw: str, declared: dict[str, Any] | None) -> Any:
    kind = (declared or {}).get("type")
    if kind == "number":
        try:
            return int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            raise ClientError(f"--input {key}: '{raw}' is not a number") from None
    if kind == "boolean":
        low = raw.strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ClientError(f"--input {key}: '{raw}' is not a boolean (true/false)")
    return raw


def build_inputs(
    ctx: Ctx, args: argparse.Namespace, declared: list[dict[str, Any]]
) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for path in args.input_file:
        read = ctx.stdin.read if str(path) == "-" else partial(path.read_text, encoding="utf-8")
        where = "stdin" if str(path) == "-" else str(path)
        inputs.update(json_object(f"--input-file {where}", read))
    by_name = {f.get("name"): f for f in declared}
    for item in args.input:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ClientError(f"--input '{item}': expected KEY=VALUE")
        inputs[key] = _coerce(key, raw, by_name.get(key))
    return inputs


# -- following a run --------------------------------------------------------------------------
async def follow(ctx: Ctx, run_id: str, on_log: Callable[[dict[str, Any]], None]) -> str:
    """Stream the run's events, handing each log line to `on_log`, until no more logs can come;
    reconnects (resuming after the last event id) when the stream breaks. Returns the status."""
    after, failures = 0, 0
    while True:
        stop: str | None = None
        try:
            async with aclosing(ctx.api.events(f"{run_path(run_id)}/events", after)) as events:
                async for event in events:
                    after = event.id if event.id is not None else after
                    data = event.data if isinstance(event.data, dict) else {}
                    kind = data.get("type") or event.name
                    if kind == "log":
                        on_log(data)
                    elif kind == "close" or (
                        kind == "status" and data.get("status") == "pending_approval"
                    ):
                        stop = str(data.get("status"))
                        break
        except ClientError as exc:
            failures += 1
            if exc.status is not None or failures > RECONNECTS:
                raise
            await asyncio.sleep(min(failures, 3))
            continue
        if stop:
            return stop
        # The stream ended without saying how the run ended: ask, and resume if it goes on.
        status = str((await ctx.api.get(run_path(run_id), what=f"run '{run_id}'")).get("status"))
        if status in STOPS:
            return status
        failures += 1
        if failures > RECONNECTS:
            raise ClientError(f"lost the event stream of run {run_id} (still {status})")


def report(ctx: Ctx, run: dict[str, Any]) -> None:
    """The end of a run for a person: a status line on stderr, the outputs on stdout."""
    rid, status = run.get("id"), run.get("status")
    took = f" in {run['duration_ms'] / 1000:.1f} s" if run.get("duration_ms") is not None else ""
    if status == "completed":
        ctx.out.note(f"run {rid} completed{took}", style="green")
    elif status == "failed":
        code = f"[{run.get('error_code')}] " if run.get("error_code") else ""
        ctx.out.note(f"run {rid} failed{took}: {code}{run.get('error') or 'no error message'}",
                     style="red")
    elif status == "pending_approval":
        approval = run.get("approval") or {}
        ctx.out.note(f"run {rid} waits for approval {approval.get('id')}: {approval.get('label')}",
                     style="magenta")
        if approval.get("preview"):
            ctx.out.note(f"  preview: {approval['preview']}")
        ctx.out.note(f"  decide with `floom-git approvals approve {approval.get('id')}` "
                     f"or `floom-git approvals reject {approval.get('id')}`")
    else:
        ctx.out.note(f"run {rid} is {status}", style="yellow")
    for art in run.get("artifacts") or []:
        ctx.out.note(f"  artifact {art.get('name')} ({size(int(art.get('size_bytes') or 0))})")
    outputs = outputs_of(run)
    if outputs:
        ctx.out.pretty_json(outputs)


async def wait_and_report(ctx: Ctx, run_id: str, as_json: bool) -> int:
    try:
        await follow(ctx, run_id, lambda line: ctx.out.log(line, to_stderr=True))
    except asyncio.CancelledError:
        ctx.out.note(f"stopped following; run {run_id} goes on on the server "
                     f"(`floom-git runs cancel {run_id}` stops it)", style="yellow")
        raise
    run = await ctx.api.get(run_path(run_id), what=f"run '{run_id}'")
    ctx.out.json(run) if as_json else report(ctx, run)
    return RUN_EXIT.get(str(run.get("status")), ERROR)


async def run_worker(ctx: Ctx, args: argparse.Namespace) -> int:
    wid = args.worker_id
    detail = await ctx.api.get(worker_path(wid), what=f"worker '{wid}'")
    inputs = build_inputs(ctx, args, declared_inputs(detail))
    started = await ctx.api.post(f"{worker_path(wid)}/runs", {"inputs": inputs},
                                 what=f"worker '{wid}'")
    run_id = started["run_id"]
    if args.no_wait:
        if args.json:
            ctx.out.json(started)
        else:
            ctx.out.text(run_id)
            ctx.out.note(f"follow it with `floom-git runs logs --follow {run_id}`")
        return OK
    ctx.out.note(f"run {run_id} of {wid} started", style="dim")
    return await wait_and_report(ctx, run_id, args.json)


# -- runs ...----------------------------------------------------------------------------------
async def list_runs(ctx: Ctx, args: argparse.Namespace) -> int:
    params = query(limit=args.limit, worker_id=args.worker, status=args.status)
    rows = await ctx.api.get("/runs", params=params)
    if args.json:
        ctx.out.json(rows)
        return OK
    shown = [
        {
            **r,
            "took": f"{r['duration_ms'] / 1000:.1f} s"
            if r.get("duration_ms") is not None
            else None,
        }
        for r in rows
    ]
    ctx.out.table(
        shown,
        [
            ("ID", "id"),
            ("WORKER", "worker_id"),
            ("STATUS", "status"),
            ("TRIGGER", "trigger_source"),
            ("CREATED", "created_at"),
            ("TOOK", "took"),
            ("ERROR", "error_code"),
        ],
        empty="no runs",
    )
    return OK


async def show_run(ctx: Ctx, args: argparse.Namespace) -> int:
    run = await ctx.api.get(run_path(args.run_id), what=f"run '{args.run_id}'")
    if args.json:
        ctx.out.json(run)
        return OK
    approval = run.get("approval") or {}
    ctx.out.fields([(k, run.get(k)) for k in ("id", "worker_id", "status", "trigger_source",
                                               "created_at", "started_at", "completed_at",
                                               "duration_ms", "error_code", "error", "worker_sha")]
                   + [("inputs", run.get("inputs") or None),
                      ("approval",
                       f"{approval.get('id')} ({approval.get('status')})" if approval else None),
                      ("artifacts", [a.get("name") for a in run.get("artifacts") or []])])
    outputs = outputs_of(run)
    if outputs:
        ctx.out.text("outputs:", style="bold")
        ctx.out.pretty_json(outputs)
    return OK


def _rank(level: Any) -> int:
    return LEVELS.index(level) if level in LEVELS else LEVELS.index("info")


def parse_logs(body: bytes) -> list[dict[str, Any]]:
    """`GET /runs/{id}/logs` as a list: a JSON array, or newline-delimited JSON."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def run_logs(ctx: Ctx, args: argparse.Namespace) -> int:
    path = run_path(args.run_id)
    if args.follow:
        least = _rank(args.level or "debug")

        def emit(line: dict[str, Any]) -> None:
            if _rank(line.get("level")) < least:
                return
            if args.json:
                ctx.out.json_line(line)
            else:
                ctx.out.log(line)

        await follow(ctx, args.run_id, emit)
        return OK
    params = query(level=args.level)
    async with ctx.api.send("GET", f"{path}/logs", params=params,
                            what=f"run '{args.run_id}'") as resp:
        lines = parse_logs(await resp.read())
    if args.json:
        ctx.out.json(lines)
        return OK
    for line in lines:
        ctx.out.log(line)
    return OK


async def cancel_run(ctx: Ctx, args: argparse.Namespace) -> int:
    result = await ctx.api.post(f"{run_path(args.run_id)}/cancel", what=f"run '{args.run_id}'")
    ctx.out.done(result, f"run {args.run_id}: {result.get('status')}")
    return OK

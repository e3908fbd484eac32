"""`approvals list|approve|reject`: decide runs that wait for a person. An id is an approval
(`apr_...`) or the run (`run_...`) that waits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from floom_git.client.commands import Ctx, command, group, json_object, query, seg
from floom_git.client.commands.runs import wait_and_report
from floom_git.client.errors import OK

STATUSES = ("pending", "approved", "rejected", "expired", "cancelled", "all")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = group(sub, "approvals", "list, approve and reject runs waiting for a decision")
    ls = command(a, "list", list_approvals, "approvals (default: the pending ones)")
    ls.add_argument("--status", default="pending", choices=STATUSES)
    ls.add_argument("--run", default=None, help="only this run's approval")
    ls.add_argument("--limit", type=int, default=50)
    yes = command(a, "approve", approve, "approve: starts the follow-up run")
    yes.add_argument("approval_id", metavar="ID", help="apr_... or the waiting run's run_...")
    yes.add_argument("--edited-output", default=None, metavar="JSON",
                         help="a JSON object replacing the proposed output ('@file' reads a file)")
    yes.add_argument("--annotation", default=None, help="a note kept with the decision")
    yes.add_argument("--wait", action="store_true",
                         help="stream the follow-up run and exit with its status, like `run`")
    no = command(a, "reject", reject, "reject: the run ends without acting")
    no.add_argument("approval_id", metavar="ID", help="apr_... or the waiting run's run_...")
    no.add_argument("--reason", default=None, help="why (kept with the decision)")


def decision_path(approval_id: str, verb: str) -> str:
    if approval_id.startswith("apr_"):
        return f"/approvals/{seg(approval_id)}/{verb}"
    return f"/runs/{seg(approval_id)}/{verb}"


async def list_approvals(ctx: Ctx, args: argparse.Namespace) -> int:
    params = query(status=args.status, limit=args.limit, run_id=args.run)
    rows = await ctx.api.get("/approvals", params=params)
    if args.json:
        ctx.out.json(rows)
        return OK
    ctx.out.table(
        rows,
        [
            ("ID", "id"),
            ("RUN", "run_id"),
            ("WORKER", "worker_id"),
            ("STATUS", "status"),
            ("LABEL", "label"),
            ("PREVIEW", "preview"),
            ("EXPIRES", "expires_at"),
        ],
        empty=f"no {'' if args.status == 'all' else args.status + ' '}approvals",
    )
    return OK


def _edited_output(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    if raw.startswith("@"):
        path = Path(raw[1:])
        return json_object(f"--edited-output {path}", lambda: path.read_text(encoding="utf-8"))
    return json_object("--edited-output", lambda: raw)


async def approve(ctx: Ctx, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    edited = _edited_output(args.edited_output)
    if edited is not None:
        body["edited_output"] = edited
    if args.annotation is not None:
        body["annotation"] = args.annotation
    decision = await ctx.api.post(decision_path(args.approval_id, "approve"), body,
                                  what=f"approval '{args.approval_id}'")
    follow_up = decision.get("follow_up_run_id") or decision.get("run_id")
    if args.wait:
        ctx.out.note(f"approved {decision.get('approval_id')}; following run {follow_up}",
                     style="dim")
        return await wait_and_report(ctx, follow_up, args.json)
    ctx.out.done(decision,
                 f"approved {decision.get('approval_id')}; follow-up run {follow_up} started")
    return OK


async def reject(ctx: Ctx, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    decision = await ctx.api.post(decision_path(args.approval_id, "reject"), body,
                                  what=f"approval '{args.approval_id}'")
    ctx.out.done(decision, f"rejected {decision.get('approval_id')} (run {decision.get('run_id')})")
    return OK

"""`issues list|show|create|comment|close`: the workspace's issues (files under .floom/issues/)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from floom_git.client.commands import Ctx, command, group, query, seg
from floom_git.client.errors import OK, ClientError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    i = group(sub, "issues", "list, read, open, comment on and close workspace issues")
    ls = command(i, "list", list_issues, "issues (default: the open ones)")
    ls.add_argument("--status", default="open", choices=("open", "closed", "all"))
    ls.add_argument("--label", default=None)
    ls.add_argument("--worker", default=None, help="only issues bound to this worker")
    show = command(i, "show", show_issue, "one issue with its comments")
    show.add_argument("issue_id", metavar="ISSUE")
    create = command(i, "create", create_issue, "open an issue")
    create.add_argument("--title", "-t", required=True)
    _body_options(create, required=False)
    create.add_argument("--label", "-l", action="append", default=[], help="a label (repeatable)")
    bind = create.add_mutually_exclusive_group()
    bind.add_argument("--worker", default=None, help="bind the issue to this worker")
    bind.add_argument("--run", default=None, help="bind the issue to this run")
    comment = command(i, "comment", comment_issue, "add a comment")
    comment.add_argument("issue_id", metavar="ISSUE")
    _body_options(comment, required=True)
    close = command(i, "close", close_issue, "close an issue")
    close.add_argument("issue_id", metavar="ISSUE")
    close.add_argument("--comment", "-m", default=None, help="comment before closing")


def _body_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    body = parser.add_mutually_exclusive_group(required=required)
    body.add_argument("--body", "-m", default=None, help="markdown text")
    body.add_argument("--body-file", type=Path, default=None,
                      help="read the text from a file ('-': stdin)")


def _body(ctx: Ctx, args: argparse.Namespace) -> str | None:
    if args.body_file is None:
        return str(args.body) if args.body is not None else None
    if str(args.body_file) == "-":
        return ctx.stdin.read()
    try:
        return str(args.body_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClientError(f"--body-file {args.body_file}: {exc.strerror}") from None


def issue_path(issue_id: str) -> str:
    return f"/workspace/issues/{seg(issue_id)}"


async def list_issues(ctx: Ctx, args: argparse.Namespace) -> int:
    worker = args.worker
    params = query(status=None if args.status == "all" else args.status, label=args.label,
                   asset_type="worker" if worker else None, asset_id=worker)
    body = await ctx.api.get("/workspace/issues", params=params)
    rows: list[dict[str, Any]] = body.get("issues", []) if isinstance(body, dict) else list(body)
    if args.json:
        ctx.out.json(body)
        return OK
    for row in rows:
        row["asset"] = f"{row['asset_type']}:{row['asset_id']}" if row.get("asset_type") else None
    ctx.out.table(
        rows,
        [
            ("ID", "id"),
            ("STATUS", "status"),
            ("TITLE", "title"),
            ("LABELS", "labels"),
            ("ASSET", "asset"),
            ("COMMENTS", "comment_count"),
            ("UPDATED", "updated_at"),
        ],
        empty=f"no {'' if args.status == 'all' else args.status + ' '}issues",
    )
    for problem in (body.get("errors") or []) if isinstance(body, dict) else []:
        ctx.out.note(f"unreadable issue file {problem.get('path')}: {problem.get('error')}",
                     style="yellow")
    return OK


async def show_issue(ctx: Ctx, args: argparse.Namespace) -> int:
    issue = await ctx.api.get(issue_path(args.issue_id), what=f"issue '{args.issue_id}'")
    if args.json:
        ctx.out.json(issue)
        return OK
    ctx.out.text(f"{issue.get('id')}: {issue.get('title')}", style="bold")
    ctx.out.fields(
        [
            ("status", issue.get("status")),
            ("labels", issue.get("labels")),
            (
                "asset",
                f"{issue['asset_type']}:{issue['asset_id']}" if issue.get("asset_type") else None,
            ),
            ("opened", f"{issue.get('created_at')} by {issue.get('created_by') or '?'}"),
        ]
    )
    if issue.get("body"):
        ctx.out.text("")
        ctx.out.text(issue["body"])
    for c in issue.get("comments") or []:
        ctx.out.text("")
        ctx.out.text(f"-- {c.get('created_by') or '?'} at {c.get('created_at')}", style="dim")
        ctx.out.text(c.get("body") or "")
    return OK


async def create_issue(ctx: Ctx, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"title": args.title, "body": _body(ctx, args) or "",
                            "labels": args.label}
    if args.worker:
        body.update(asset_type="worker", asset_id=args.worker)
    elif args.run:
        body.update(asset_type="run", asset_id=args.run)
    issue = await ctx.api.post("/workspace/issues", body)
    ctx.out.done(issue, f"opened {issue.get('id')}: {issue.get('title')}")
    return OK


async def comment_issue(ctx: Ctx, args: argparse.Namespace) -> int:
    comment = await ctx.api.post(
        f"{issue_path(args.issue_id)}/comments",
        {"body": _body(ctx, args)},
        what=f"issue '{args.issue_id}'",
    )
    ctx.out.done(comment, f"commented on {args.issue_id} ({comment.get('id')})")
    return OK


async def close_issue(ctx: Ctx, args: argparse.Namespace) -> int:
    what = f"issue '{args.issue_id}'"
    if args.comment:
        await ctx.api.post(f"{issue_path(args.issue_id)}/comments", {"body": args.comment},
                           what=what)
    issue = await ctx.api.patch(issue_path(args.issue_id), {"status": "closed"}, what=what)
    ctx.out.done(issue, f"closed {issue.get('id')}: {issue.get('title')}")
    return OK

"""`workspaces list|switch|export|import`: see and choose the workspace commands act in, and
move a workspace's content as a ZIP bundle (with progress bars)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from floom_git.client.commands import Ctx, command, group, seg
from floom_git.client.errors import OK, ClientError
from floom_git.client.output import size


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ws = group(sub, "workspaces", "list and switch workspaces; export or import their content")
    command(ws, "list", list_workspaces, "workspaces you belong to (* = the one commands use)")
    switch = command(ws, "switch", switch_workspace, "act in this workspace from now on "
                     "(stored per server)")
    switch.add_argument("workspace_id", metavar="ID")
    export = command(ws, "export", export_workspace, "download workers, contexts, workspace.md and "
                     "issues as a ZIP bundle (admin)")
    export.add_argument("-o", "--output", default=None,
                        help="file to write (default: <id>-export.zip)")
    imp = command(ws, "import", import_workspace,
                  "import a bundle into the workspace in one commit "
                  "(never overwrites)")
    imp.add_argument("bundle", type=Path, help="a ZIP from `workspaces export`")


def rows_and_active(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """`GET /workspaces` as (rows, active id): a bare list with `active` flags, or
    `{workspaces: [...], active_id}`."""
    if isinstance(body, dict):
        rows = list(body.get("workspaces") or [])
        active = body.get("active_id")
    else:
        rows = list(body or [])
        active = None
    if active is None:
        active = next((w.get("id") for w in rows if w.get("active")), None)
    return rows, active


async def list_workspaces(ctx: Ctx, args: argparse.Namespace) -> int:
    rows, active = rows_and_active(await ctx.api.get("/workspaces"))
    current = ctx.target.workspace or active
    if args.json:
        ctx.out.json({"workspaces": rows, "active_id": active, "current": current})
        return OK
    table = [{**w, "current": "*" if w.get("id") == current else ""} for w in rows]
    ctx.out.table(table, [("", "current"), ("ID", "id"), ("NAME", "name"), ("ROLE", "role"),
                          ("DESCRIPTION", "description")], empty="you belong to no workspace")
    return OK


async def switch_workspace(ctx: Ctx, args: argparse.Namespace) -> int:
    ws_id = args.workspace_id
    chosen = await ctx.api.post(f"/workspaces/{seg(ws_id)}/select", what=f"workspace '{ws_id}'")
    ctx.store.update_server(ctx.target.server, workspace=ws_id)
    ctx.out.note(f"Now acting in workspace {ws_id} ({chosen.get('name')}) on {ctx.target.server}")
    if "FLOOM_WORKSPACE" in ctx.environ:
        ctx.out.note("note: FLOOM_WORKSPACE is set and takes precedence", style="yellow")
    if args.json:
        ctx.out.json(chosen)
    return OK


async def export_workspace(ctx: Ctx, args: argparse.Namespace) -> int:
    target = Path(args.output or f"{ctx.target.workspace or 'workspace'}-export.zip")
    with ctx.out.progress(f"exporting to {target}") as progress:
        data = await ctx.api.download("/workspace/export", progress)
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise ClientError(f"{target}: {exc.strerror}") from None
    ctx.out.note(f"Wrote {target} ({size(len(data))})")
    if args.json:
        ctx.out.json({"path": str(target), "bytes": len(data)})
    return OK


async def import_workspace(ctx: Ctx, args: argparse.Namespace) -> int:
    try:
        data = args.bundle.read_bytes()
    except OSError as exc:
        raise ClientError(f"{args.bundle}: {exc.strerror}") from None
    with ctx.out.progress(f"uploading {args.bundle.name}") as progress:
        result = await ctx.api.upload("POST", "/workspace/import", data, "application/zip",
                                      progress)
    if args.json:
        ctx.out.json(result)
        return OK
    ctx.out.note(f"Imported {args.bundle} ({size(len(data))})")
    skipped = [
        f"{s.get('type')} {s.get('id')} ({s.get('reason')})" for s in result.get("skipped") or []
    ]
    renamed = [f"{old} -> {new}" for old, new in (result.get("id_remaps") or {}).items()]
    ctx.out.fields([(label, result.get(key)) for label, key in (
        ("workers", "workers_imported"), ("contexts", "contexts_imported"),
        ("issues", "issues_imported"))] + [("renamed", renamed), ("skipped", skipped)]
        + [("needs secrets", result.get("required_secrets")), ("commit", result.get("sha"))])
    return OK

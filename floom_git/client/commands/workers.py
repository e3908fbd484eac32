"""`workers list|show|validate|push|pull`: read workers, and move a worker folder between the
local disk and the server (push creates or replaces all its files in one commit)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from floom_git.client import folder
from floom_git.client.commands import Ctx, command, group, query, seg
from floom_git.client.errors import ERROR, OK, ClientError
from floom_git.client.output import size


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = group(sub, "workers", "list, inspect, validate, push and pull workers")
    ls = command(w, "list", list_workers, "workers of the workspace")
    ls.add_argument("--status", default=None, help="ready|paused|archived|error")
    ls.add_argument("-q", "--query", default=None, help="substring of id, title or description")
    ls.add_argument("--all", action="store_true", help="include archived workers")
    ls.add_argument("--limit", type=int, default=100)
    show = command(w, "show", show_worker, "one worker: manifest, inputs, files")
    show.add_argument("worker_id", metavar="WORKER")
    val = command(w, "validate", validate_worker, "check a local worker folder as the server would")
    val.add_argument("path", nargs="?", type=Path, default=Path("."), help="folder (default: .)")
    push = command(w, "push", push_worker, "create the worker from a local folder, or replace "
                   "all its files (one commit)")
    push.add_argument("path", nargs="?", type=Path, default=Path("."), help="folder (default: .)")
    pull = command(w, "pull", pull_worker, "download a worker's files into a local folder")
    pull.add_argument("worker_id", metavar="WORKER")
    pull.add_argument("path", nargs="?", type=Path, default=None, help="folder (default: ./WORKER)")
    pull.add_argument(
        "--force",
        action="store_true",
        help="overwrite local changes and delete local files the server does not have",
    )


def worker_path(worker_id: str) -> str:
    return f"/workers/{seg(worker_id)}"


async def list_workers(ctx: Ctx, args: argparse.Namespace) -> int:
    params = query(shape="list", limit=args.limit, status=args.status, q=args.query,
                   include_archived=args.all)
    rows = await ctx.api.get("/workers", params=params)
    if args.json:
        ctx.out.json(rows)
        return OK
    ctx.out.table(
        rows,
        [
            ("ID", "id"),
            ("NAME", "name"),
            ("STATUS", "status"),
            ("VERSION", "version"),
            ("TRIGGER", "trigger_type"),
            ("MODE", "mode"),
            ("UPDATED", "updated_at"),
        ],
        empty="no workers yet; create one with `floom-git workers push DIR`",
    )
    return OK


def _inputs(fields: list[dict[str, Any]]) -> list[str]:
    return [f"{f.get('name')} ({f.get('type') or f.get('kind') or 'string'}"
            + (", required)" if f.get("required") else ")") for f in fields]


def declared_inputs(detail: dict[str, Any]) -> list[dict[str, Any]]:
    manifest = detail.get("manifest") or {}
    return detail.get("inputs") or (manifest.get("exec") or {}).get("inputs") or []


def _triggers(triggers: list[Any]) -> list[str]:
    """Labels as the server gives them ("manual", "cron 0 9 * * *"); older servers sent trigger
    objects, with the default type (manual) left out."""
    return [t if isinstance(t, str)
            else (t.get("type") or "manual") + (f" {t['cron']}" if t.get("cron") else "")
            for t in triggers]


async def show_worker(ctx: Ctx, args: argparse.Namespace) -> int:
    wid = args.worker_id
    detail = await ctx.api.get(worker_path(wid), what=f"worker '{wid}'")
    if args.json:
        ctx.out.json(detail)
        return OK
    ctx.out.fields(
        [
            ("id", detail.get("id")),
            ("name", detail.get("name")),
            ("status", detail.get("status")),
            ("error", detail.get("error")),
            ("description", detail.get("description")),
            ("version", detail.get("version")),
            ("mode", detail.get("mode")),
            ("runtime", detail.get("runtime")),
            ("entry", detail.get("entry")),
            ("triggers", _triggers(detail.get("triggers") or [])),
            ("visibility", detail.get("visibility")),
            ("paused", detail.get("paused") or None),
            ("inputs", _inputs(declared_inputs(detail))),
            ("outputs", [f.get("name") for f in detail.get("outputs") or []]),
            ("secrets", detail.get("declared_secrets")),
            ("missing secrets", detail.get("missing_secrets")),
            ("commit", detail.get("sha")),
        ]
    )
    files = [{"path": f.get("path"),
              "size": size(int(f.get("size") or 0))} for f in detail.get("files") or []]
    ctx.out.text("")
    ctx.out.table(files, [("FILE", "path"), ("SIZE", "size")], empty="no files")
    return OK


async def validate_worker(ctx: Ctx, args: argparse.Namespace) -> int:
    local = folder.read(args.path)
    try:
        manifest = folder.validate(local)
    except ClientError as exc:
        if not args.json:
            raise
        ctx.out.json({"valid": False, "path": str(args.path), "error": exc.message})
        return ERROR
    if args.json:
        ctx.out.json({"valid": True, "path": str(args.path), "worker_id": manifest.name,
                      "files": sorted(local.files), "skipped": local.skipped})
        return OK
    ctx.out.note(f"ok: worker '{manifest.name}' in {args.path} ({len(local.files)} files)")
    _note_skipped(ctx, local)
    return OK


def _note_skipped(ctx: Ctx, local: folder.LocalWorker) -> None:
    for path in local.skipped:
        ctx.out.note(f"left out {path}: secret-bearing files stay local (use workspace secrets)",
                     style="yellow")


async def push_worker(ctx: Ctx, args: argparse.Namespace) -> int:
    local = folder.read(args.path)
    folder.validate(local)
    wid = local.worker_id
    try:
        before = (await ctx.api.get(worker_path(wid))).get("sha")
        method, path, verb = "PUT", f"{worker_path(wid)}/files", "Updated"
    except ClientError as exc:
        if exc.status != 404:
            raise
        before, method, path, verb = None, "POST", "/workers", "Created"
    body = json.dumps({"files": local.file_bodies()}).encode()
    with ctx.out.progress(f"pushing {wid}") as progress:
        detail = await ctx.api.upload(method, path, body, "application/json", progress,
                                      what=f"worker '{wid}'")
    _note_skipped(ctx, local)
    if before is not None and detail.get("sha") == before:
        ctx.out.note(f"Worker {wid} already matches {args.path} (commit {before})")
    else:
        ctx.out.note(f"{verb} worker {wid} from {args.path} ({len(local.files)} files, "
                     f"{size(len(body))} sent; commit {detail.get('sha')})")
    if args.json:
        ctx.out.json(detail)
    return OK


async def pull_worker(ctx: Ctx, args: argparse.Namespace) -> int:
    wid = args.worker_id
    target: Path = args.path or Path(wid)
    with ctx.out.progress(f"pulling {wid}") as progress:
        data = await ctx.api.download(f"{worker_path(wid)}/bundle.zip", progress,
                                      what=f"worker '{wid}'")
    files = folder.bundle_files(data, wid)
    changed = folder.differs(target, files)
    if changed and not args.force:
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise ClientError(
            f"{target}: {len(changed)} local file(s) differ from the server ({shown}); "
            "pass --force to replace them"
        )
    removed = folder.write(target, files)
    for rel in removed:
        ctx.out.note(f"deleted {rel} (not on the server)")
    ctx.out.note(f"Pulled worker {wid} into {target} ({len(files)} files, {size(len(data))})")
    if args.json:
        ctx.out.json({"worker_id": wid, "path": str(target), "files": sorted(files),
                      "deleted": removed})
    return OK

"""Workers: list, detail, create, replace files, flags kept in worker.yml (paused, archived,
visibility), delete, versions, rollback, sample input and bundle.

Flags are written into worker.yml as one-line edits, so they travel with the repository and
there is one source of truth. Every write is one commit through the workspace writer.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import msgspec

from floom_git.errors import Conflict, InvalidInput, InvalidManifest, NotFound
from floom_git.schemas.api import (
    Deleted,
    FileOut,
    ReloadResult,
    Version,
    VersionFiles,
    WorkerCreate,
    WorkerDetail,
    WorkerSummary,
)
from floom_git.schemas.manifest import parse_manifest
from floom_git.services import connection_files as connections
from floom_git.services import mcp_tools, sync
from floom_git.services.actor import Actor
from floom_git.services.files import decode_files, file_out
from floom_git.services.registry import WorkerEntry, validate_worker
from floom_git.services.workspaces import Workspace
from floom_git.storage import history, paths
from floom_git.storage.codec import dump_yaml, load_yaml, set_top_level
from floom_git.storage.repo import Changeset, WorkspaceRepo

NOT_FOUND = "Worker not found"
STATUSES = {"ready", "paused", "archived", "error", "missing_connection"}


@dataclass(frozen=True)
class ListQuery:
    limit: int = 100
    offset: int = 0
    status: str | None = None
    starred: bool | None = None
    q: str | None = None
    shape: str = "full"
    include_archived: bool = False


def entry_or_404(ws: Workspace, worker_id: str) -> WorkerEntry:
    entry = ws.workers.get(worker_id) if paths.WORKER_ID_RE.match(worker_id or "") else None
    if entry is None:
        raise NotFound(NOT_FOUND)
    return entry


def _status(entry: WorkerEntry, missing: list[str]) -> str:
    """A ready worker whose declared connections do not all exist cannot do its job."""
    return "missing_connection" if missing and entry.status == "ready" else entry.status


def _summary_fields(entry: WorkerEntry, starred: Collection[str], shape: str,
                    missing: list[str]) -> dict[str, Any]:
    m = entry.manifest
    fields: dict[str, Any] = dict(
        id=entry.id,
        name=m.title if m else entry.id,
        description=m.effective_description if m else None,
        version=m.version if m else None,
        status=_status(entry, missing),
        error=entry.error,
        visibility=m.visibility if m else "private",
        paused=bool(m and m.paused),
        archived=bool(m and m.archived),
        tags=list(m.tags) if m else [],
        trigger_type=m.trigger_type if m else None,
        mode=m.mode if m else None,
        runtime=m.exec.runtime if m else None,
        starred=entry.id in starred,
        updated_at=entry.updated_at,
    )
    if shape != "list":
        fields["inputs"] = [msgspec.to_builtins(f) for f in m.exec.inputs] if m else []
    return fields


def list_workers(
    ws: Workspace, query: ListQuery, starred: Collection[str] = ()
) -> tuple[list[WorkerSummary], int]:
    """Filtered page of workers and the total that matched (for X-Total-Count)."""
    if query.status is not None and query.status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(sorted(STATUSES))}")
    needle = (query.q or "").lower()
    matched = []
    try:
        links = connections.entries(ws)
    except Conflict:
        links = []  # an invalid connections file: GET /connections names the problem
    missing = {e.id: connections.missing_connections(ws, e.manifest, links) for e in ws.workers.all()}
    for entry in ws.workers.all():
        if entry.status == "archived" and not query.include_archived and query.status != "archived":
            continue
        if query.status and _status(entry, missing.get(entry.id, [])) != query.status:
            continue
        if query.starred is not None and (entry.id in starred) != query.starred:
            continue
        if needle:
            m = entry.manifest
            hay = " ".join([entry.id, m.title, m.effective_description] if m else [entry.id])
            if needle not in hay.lower():
                continue
        matched.append(entry)
    page = matched[query.offset : query.offset + query.limit]
    return [WorkerSummary(**_summary_fields(e, starred, query.shape, missing.get(e.id, [])))
            for e in page], len(matched)


def detail(ws: Workspace, worker_id: str, secret_names: Collection[str] | None = None,
           starred: Collection[str] = ()) -> WorkerDetail:
    entry = entry_or_404(ws, worker_id)
    if secret_names is None:
        secret_names = ws.secret_names()
    folder = ws.path / paths.worker_dir(entry.id)
    files: list[FileOut] = []
    for rel in entry.files:
        try:
            files.append(file_out(rel, (folder / rel).read_bytes()))
        except OSError:
            continue  # deleted between listing and reading; the next reload drops it
    m = entry.manifest
    declared = list(m.exec.secrets) if m else []
    tip = ws.repo.tip()
    missing = connections.missing_connections(ws, m)
    return WorkerDetail(
        **_summary_fields(entry, starred, "full", missing),
        manifest=msgspec.to_builtins(m) if m else None,
        manifest_yaml=entry.manifest_text,
        entry=m.entry if m else None,
        command=m.command if m else None,
        declared_secrets=declared,
        missing_secrets=[s for s in declared if s not in secret_names],
        missing_connections=missing,
        outputs=[msgspec.to_builtins(f) for f in m.exec.outputs] if m else [],
        triggers=[msgspec.to_builtins(t) for t in m.all_triggers] if m else [],
        example_input=m.example_input if m else None,
        files=files,
        sha=str(tip.id)[:7] if tip else None,
    )


def _where_name(text: bytes) -> str | None:
    try:
        raw = load_yaml(text, where="worker.yml")
    except InvalidInput:
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and paths.WORKER_ID_RE.match(name) else None


def assemble(body: WorkerCreate, max_bytes: int) -> tuple[str, dict[str, bytes]]:
    """The worker id and complete file set a create body describes (not validated yet)."""
    files = decode_files(body.files, max_bytes)
    sources = [s for s in (body.worker_yml, body.manifest) if s is not None]
    if len(sources) > 1:
        raise InvalidInput("give the manifest once: either worker_yml or manifest")
    if body.worker_yml is not None:
        files[paths.MANIFEST] = body.worker_yml.encode()
    elif body.manifest is not None:
        files[paths.MANIFEST] = dump_yaml(body.manifest)
    if paths.MANIFEST not in files:
        raise InvalidInput("worker_yml: a manifest is required (worker_yml, manifest or files)")
    if body.run_py is not None:
        files["run.py"] = body.run_py.encode()
    if body.skill_md is not None:
        files["SKILL.md"] = body.skill_md.encode()
    worker_id = _where_name(files[paths.MANIFEST])
    if worker_id is None:
        # Let the parser produce the precise message (bad YAML, missing or invalid name).
        parse_manifest(files[paths.MANIFEST], where="worker.yml")
        raise InvalidManifest("worker.yml: `name` is required and must be a slug of 3-64 "
                              "characters (a-z, 0-9, '-') - at `$.name`")
    return worker_id, files


async def create(ws: Workspace, actor: Actor, body: WorkerCreate, max_bytes: int) -> WorkerDetail:
    worker_id, files = assemble(body, max_bytes)
    return await _create(ws, actor, worker_id, files)


async def _create(ws: Workspace, actor: Actor, worker_id: str, files: dict[str, bytes]) -> WorkerDetail:
    validate_worker(worker_id, files)
    base = paths.worker_dir(worker_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        if repo.entry(repo.tip(), base) is not None or ws.workers.get(worker_id) is not None:
            raise Conflict(f"Worker {worker_id} already exists")
        return Changeset({f"{base}/{p}": d for p, d in files.items()}, f"worker: create {worker_id}")

    await ws.writer.write(build, actor.signature)
    return detail(ws, worker_id)


async def replace_files(
    ws: Workspace, actor: Actor, worker_id: str, files_in: list, max_bytes: int
) -> WorkerDetail:
    entry_or_404(ws, worker_id)
    return await _replace(ws, actor, worker_id, decode_files(files_in, max_bytes))


async def _replace(ws: Workspace, actor: Actor, worker_id: str, files: dict[str, bytes]) -> WorkerDetail:
    validate_worker(worker_id, files)
    base = paths.worker_dir(worker_id)
    changes: dict[str, Any] = {base: None}
    changes.update({f"{base}/{p}": d for p, d in files.items()})
    await ws.writer.write(
        lambda repo: Changeset(changes, f"worker {worker_id}: replace files"), actor.signature
    )
    return detail(ws, worker_id)


async def save(ws: Workspace, actor: Actor, body: WorkerCreate, max_bytes: int) -> tuple[WorkerDetail, bool]:
    """Create the worker the manifest names, or replace all its files when it exists (what
    POST /workers and PUT /workers/{id}/files do); returns (detail, created)."""
    worker_id, files = assemble(body, max_bytes)
    if ws.workers.get(worker_id) is None:
        return await _create(ws, actor, worker_id, files), True
    return await _replace(ws, actor, worker_id, files), False


async def set_field(
    ws: Workspace, actor: Actor, worker_id: str, key: str, value: Any, message: str
) -> WorkerDetail:
    """Set one top-level field of worker.yml (a one-line edit) and commit it."""
    entry_or_404(ws, worker_id)
    where = f"{paths.worker_dir(worker_id)}/{paths.MANIFEST}"

    def build(repo: WorkspaceRepo) -> Changeset | None:
        current = repo.read_blob(repo.tip(), where)
        if current is None:
            raise NotFound(NOT_FOUND)
        text = set_top_level(current.decode("utf-8"), key, value)
        parse_manifest(text.encode(), where=where, folder=worker_id)
        return Changeset({where: text.encode()}, message)

    await ws.writer.write(build, actor.signature)
    return detail(ws, worker_id)


async def delete(ws: Workspace, actor: Actor, worker_id: str) -> Deleted:
    entry_or_404(ws, worker_id)
    base = paths.worker_dir(worker_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        tools = mcp_tools.exposing(repo, worker_id)  # a push deleting it is refused alike
        if tools:
            raise Conflict(f"Worker {worker_id} is exposed as MCP tool {', '.join(tools)}; "
                           "remove the tool first (DELETE /mcp-tools/{id})")
        return Changeset({base: None}, f"worker: delete {worker_id}")

    result = await ws.writer.write(build, actor.signature)
    ws.workers.reload([worker_id])
    return Deleted(deleted=True, id=worker_id, sha=result.short)


def _version(entry: history.LogEntry, asset_type: str, asset_id: str) -> Version:
    return Version(id=entry.sha[:7], sha=entry.sha[:7], message=entry.message, author=entry.author,
                   email=entry.email, timestamp=entry.timestamp, asset_type=asset_type,
                   asset_id=asset_id)


async def versions(ws: Workspace, worker_id: str, limit: int, offset: int) -> list[Version]:
    if not paths.WORKER_ID_RE.match(worker_id):
        raise NotFound(NOT_FOUND)
    entries = await asyncio.to_thread(
        history.log, ws.path, [paths.worker_dir(worker_id)], limit=limit, skip=offset,
        git=ws.settings.git_binary,
    )
    if not entries and ws.workers.get(worker_id) is None:
        raise NotFound(NOT_FOUND)
    return [_version(e, "worker", worker_id) for e in entries]


def version_files(ws: Workspace, worker_id: str, sha: str) -> VersionFiles:
    base = paths.worker_dir(worker_id)
    commit = history.version_of(ws.repo, sha, base)
    files = ws.repo.files_at(commit, base)
    return VersionFiles(
        sha=str(commit.id)[:7],
        files=[file_out(p, blob.data) for p, blob in sorted(files.items())],
    )


async def rollback(ws: Workspace, actor: Actor, worker_id: str, sha: str) -> WorkerDetail:
    paths.check_worker_id(worker_id)
    base = paths.worker_dir(worker_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        commit = history.version_of(repo, sha, base)
        return history.restore(repo, sha, base, f"rollback: restore {worker_id} to {str(commit.id)[:7]}")

    await ws.writer.write(build, actor.signature)
    ws.workers.reload([worker_id])
    return detail(ws, worker_id)


def sample_input(ws: Workspace, worker_id: str) -> dict[str, Any]:
    entry = entry_or_404(ws, worker_id)
    if entry.manifest is None or entry.manifest.example_input is None:
        raise NotFound(f"Worker {worker_id} declares no example_input")
    return entry.manifest.example_input


def bundle_zip(ws: Workspace, worker_id: str) -> bytes:
    entry = entry_or_404(ws, worker_id)
    folder = ws.path / paths.worker_dir(worker_id)
    if not entry.files:
        raise Conflict(f"Worker {worker_id} has no files")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in entry.files:
            if paths.is_secret_file(rel):
                continue
            zf.writestr(f"{worker_id}/{rel}", (folder / rel).read_bytes())
    return buf.getvalue()


async def reload(ws: Workspace) -> ReloadResult:
    """Force the watcher's reconciliation: reload every worker, commit valid on-disk edits."""
    synced = await sync.reconcile(ws)
    errors = [e.error for e in ws.workers.all() if e.error]
    errors += [why for why in synced.invalid.values() if why not in errors]
    return ReloadResult(status="success", workers_loaded=len(ws.workers), committed=synced.committed,
                        errors=errors)

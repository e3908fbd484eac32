"""Workers: list, create, replace files, fields kept in worker.yml (paused, archived,
visibility, triggers, input values), delete, versions, rollback, sample input and bundle.
What a worker looks like in responses is services/worker_views.py.

Flags are written into worker.yml as one-line edits, so they travel with the repository and
there is one source of truth. Every write is one commit through the workspace writer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from floom_git import paths
from floom_git.codec import dump_yaml, load_yaml, set_top_level
from floom_git.errors import Conflict, InvalidInput, InvalidManifest, NotFound
from floom_git.schemas.api import (
    Deleted,
    FileIn,
    ReloadResult,
    Version,
    VersionFiles,
    WorkerCreate,
)
from floom_git.schemas.connections import ConnectionEntry
from floom_git.schemas.manifest import Manifest, parse_manifest
from floom_git.schemas.run import WorkerPatch
from floom_git.services import assets, connection_files, mcp_tools, sync
from floom_git.services.actor import Actor
from floom_git.services.cron import next_fire
from floom_git.services.files import decode_files
from floom_git.services.registry import WorkerEntry, validate_worker
from floom_git.services.run_inputs import check_given
from floom_git.services.stars import StarStore
from floom_git.services.webhooks import WebhookStore
from floom_git.services.workspaces import Workspace
from floom_git.storage.repo import Changeset, WorkspaceRepo

NOT_FOUND = "Worker not found"
STATUSES = {"ready", "paused", "archived", "error", "missing_connection", "needs_setup"}


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


def status_of(
    ws: Workspace, entry: WorkerEntry, connections: list[ConnectionEntry] | None = None
) -> tuple[str, list[str]]:
    """(status, missing connections): a ready worker whose declared connections do not all
    exist is `missing_connection`, since it cannot do its job."""
    missing = connection_files.missing_connections(ws, entry.manifest, connections)
    return ("missing_connection" if missing and entry.status == "ready" else entry.status), missing


def list_entries(
    ws: Workspace, query: ListQuery, starred: Collection[str] = (),
    status_of: Callable[[WorkerEntry], str] | None = None,
) -> tuple[list[WorkerEntry], int]:
    """Filtered page of workers and the total that matched (for X-Total-Count); `status_of`
    gives the status people see (needs_setup for an agent that cannot run yet,
    missing_connection for a worker whose connections are not all there)."""
    if query.status is not None and query.status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(sorted(STATUSES))}")
    needle = (query.q or "").lower()
    matched = []
    for entry in ws.workers.all():
        if entry.status == "archived" and not query.include_archived and query.status != "archived":
            continue
        if query.status and (status_of(entry) if status_of else entry.status) != query.status:
            continue
        if query.starred is not None and (entry.id in starred) != query.starred:
            continue
        if needle:
            m = entry.manifest
            hay = " ".join([entry.id, m.title, m.effective_description] if m else [entry.id])
            if needle not in hay.lower():
                continue
        matched.append(entry)
    return matched[query.offset : query.offset + query.limit], len(matched)


def _where_name(text: bytes) -> str | None:
    try:
        raw = load_yaml(text, where="worker.yml")
    except InvalidInput:
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and paths.WORKER_ID_RE.match(name) else None


def assemble(body: WorkerCreate, max_bytes: int) -> tuple[str, dict[str, bytes]]:
    """The worker id and complete file set of a create body (not validated yet): `files`, then
    worker_yml (or manifest), run_py and skill_md on top. InvalidInput for bad paths or a
    manifest given twice, InvalidManifest when it names no valid id."""
    files = _source_files(body, max_bytes)
    worker_id = _where_name(files[paths.MANIFEST])
    if worker_id is None:
        # Let the parser produce the precise message (bad YAML, missing or invalid name).
        parse_manifest(files[paths.MANIFEST], where="worker.yml")
        raise InvalidManifest("worker.yml: `name` is required and must be a slug of 3-64 "
                              "characters (a-z, 0-9, '-') - at `$.name`")
    return worker_id, files


def _source_files(body: WorkerCreate, max_bytes: int) -> dict[str, bytes]:
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
    return files


async def create(ws: Workspace, actor: Actor, body: WorkerCreate, max_bytes: int) -> str:
    """Create a worker from a manifest plus files in one commit; returns its id."""
    worker_id, files = assemble(body, max_bytes)
    await _create(ws, actor, worker_id, files)
    return worker_id


async def _create(ws: Workspace, actor: Actor, worker_id: str, files: dict[str, bytes]) -> None:
    validate_worker(worker_id, files)
    base = paths.worker_dir(worker_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        if repo.entry(repo.tip(), base) is not None or ws.workers.get(worker_id) is not None:
            raise Conflict(f"Worker {worker_id} already exists")
        return Changeset(
            {f"{base}/{p}": d for p, d in files.items()}, f"worker: create {worker_id}"
        )

    await ws.writer.write(build, actor.signature)


async def save(ws: Workspace, actor: Actor, body: WorkerCreate, max_bytes: int) -> tuple[str, bool]:
    """Create the worker the manifest names, or replace all its files when it exists (what
    POST /workers and PUT /workers/{id}/files do); returns (worker id, created)."""
    worker_id, files = assemble(body, max_bytes)
    if ws.workers.get(worker_id) is None:
        await _create(ws, actor, worker_id, files)
        return worker_id, True
    await _replace(ws, actor, worker_id, files)
    return worker_id, False


async def update_source(
    ws: Workspace, actor: Actor, worker_id: str, body: WorkerCreate, max_bytes: int
) -> None:
    """Write the given source files over the worker's (others stay) in one commit; the result
    must validate and keep `name` equal to the id. No commit when nothing changes."""
    entry_or_404(ws, worker_id)
    files = _source_files(body, max_bytes)
    base = paths.worker_dir(worker_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        current = {p: b.data for p, b in repo.files_at(repo.tip(), base).items()}
        validate_worker(worker_id, {**current, **files})
        return Changeset({f"{base}/{p}": d for p, d in files.items()},
                         f"worker {worker_id}: update source")

    await ws.writer.write(build, actor.signature)


async def replace_files(
    ws: Workspace, actor: Actor, worker_id: str, files_in: list[FileIn], max_bytes: int
) -> None:
    entry_or_404(ws, worker_id)
    await _replace(ws, actor, worker_id, decode_files(files_in, max_bytes))


async def _replace(ws: Workspace, actor: Actor, worker_id: str, files: dict[str, bytes]) -> None:
    validate_worker(worker_id, files)
    base = paths.worker_dir(worker_id)
    changes: dict[str, Any] = {base: None}
    changes.update({f"{base}/{p}": d for p, d in files.items()})
    await ws.writer.write(
        lambda repo: Changeset(changes, f"worker {worker_id}: replace files"), actor.signature
    )


Edit = Callable[[dict[str, Any]], dict[str, Any]]


async def edit_manifest(
    ws: Workspace, actor: Actor, worker_id: str, edits: dict[str, Any] | Edit, message: str,
    check: Callable[[Manifest], None] | None = None,
) -> bool:
    """Set top-level fields of worker.yml (None removes one) in one commit, editing only their
    lines. `edits` may be a function of the committed manifest (as a mapping) returning the
    fields, so a change computed from the current value is made under the writer lock.
    The result must validate. Returns whether anything changed (no commit otherwise)."""
    entry_or_404(ws, worker_id)
    where = f"{paths.worker_dir(worker_id)}/{paths.MANIFEST}"

    def build(repo: WorkspaceRepo) -> Changeset | None:
        current = repo.read_blob(repo.tip(), where)
        if current is None:
            raise NotFound(NOT_FOUND)
        text = current.decode("utf-8")
        if callable(edits):
            raw = load_yaml(current, where=where)
            fields = edits(raw if isinstance(raw, dict) else {})
        else:
            fields = edits
        for key, value in fields.items():
            text = set_top_level(text, key, value)
        if text.encode() == current:
            return None
        manifest = parse_manifest(text.encode(), where=where, folder=worker_id)
        if check is not None:
            check(manifest)
        return Changeset({where: text.encode()}, message)

    result = await ws.writer.write(build, actor.signature)
    return result is not None and result.sha is not None


SCHEDULE_KINDS = ("schedule", "cron", "scheduled")


def _triggers(raw: dict[str, Any], body: WorkerPatch) -> list[dict[str, Any]] | None:
    """The new `triggers:` of a PATCH, or None when it leaves them alone. `trigger_type`
    replaces every trigger with one of that type (a schedule keeps its cron and zone unless
    new ones are given); `cron`/`timezone` alone edit the worker's schedule trigger."""
    cron = body.cron if body.cron is not None else body.cron_expr
    zone = body.timezone if body.timezone is not None else body.cron_timezone
    if body.trigger_type is None and cron is None and zone is None:
        return None
    listed = raw.get("triggers") or (
        [raw["trigger"]] if isinstance(raw.get("trigger"), dict) else []
    )
    current = [dict(t) for t in listed if isinstance(t, dict)]
    at = next((i for i, t in enumerate(current) if t.get("type") in SCHEDULE_KINDS), None)
    if body.trigger_type is None:
        if at is None:
            raise InvalidInput("cron: the worker has no schedule trigger; send trigger_type "
                               "\"schedule\" with it")
        current[at].update({k: v for k, v in (("cron", cron), ("timezone", zone)) if v is not None})
        return current
    if body.trigger_type in SCHEDULE_KINDS:
        old = current[at] if at is not None else {}
        cron = cron or old.get("cron")
        zone = zone or old.get("timezone")
        if not cron:
            raise InvalidInput("cron: a schedule trigger needs a cron expression")
        return [{"type": "schedule", "cron": cron, **({"timezone": zone} if zone else {})}]
    return [{"type": body.trigger_type}]


def check_settings(manifest: Manifest) -> None:
    """What a settings edit must leave valid beyond the manifest schema: every cron and zone
    parse, and saved input values fit the declared inputs. InvalidInput naming the field."""
    for i, t in enumerate(manifest.all_triggers):
        if t.cron:
            try:
                next_fire(t.cron, t.timezone, dt.datetime.now(dt.UTC))
            except ValueError as exc:
                raise InvalidInput(f"triggers[{i}]: {exc}") from None
    check_given(manifest, manifest.input_values or {})


def patch_edits(body: WorkerPatch) -> tuple[Edit, list[str]]:
    """The worker.yml edits of PATCH /workers/{id} (a function of the committed manifest) and
    the names of the settings it touches (for the commit message)."""
    touched = [
        name
        for name, value in (
            ("enabled", body.enabled),
            ("input_values", body.input_values),
            ("visibility", body.visibility),
            ("title", body.name),
            ("description", body.description),
        )
        if value is not None
    ]
    if any(v is not None for v in (body.trigger_type, body.cron, body.cron_expr, body.timezone,
                                   body.cron_timezone)):
        touched.append("triggers")

    def edits(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if body.enabled is not None:
            out["paused"] = None if body.enabled else True
            if body.enabled and raw.get("enabled") is False:
                out["enabled"] = None
        if body.input_values is not None:
            out["input_values"] = body.input_values or None
        if body.visibility is not None:
            out["visibility"] = body.visibility
        if body.name is not None:
            out["title"] = body.name
        if body.description is not None:
            out["description"] = body.description
        triggers = _triggers(raw, body)
        if triggers is not None:
            out["triggers"] = triggers
            out["trigger"] = None
        # What worker.yml already says (or means by leaving it out) is no change.
        current = {"visibility": "private", **raw}
        return {k: v for k, v in out.items() if current.get(k) != v}

    return edits, touched


async def set_field(
    ws: Workspace, actor: Actor, worker_id: str, key: str, value: Any, message: str
) -> None:
    """Set one top-level field of worker.yml (a one-line edit) and commit it."""
    await edit_manifest(ws, actor, worker_id, {key: value}, message)


async def patch(ws: Workspace, actor: Actor, worker_id: str, body: WorkerPatch, stars: StarStore,
                hooks: WebhookStore) -> str | None:
    """PATCH /workers/{id}: the settings, each an edit of worker.yml, in one commit; `starred`
    (the actor's, kept on the server); a webhook secret rotation, whose new secret is returned
    (shown once)."""
    entry_or_404(ws, worker_id)
    edits, touched = patch_edits(body)
    if touched:
        await edit_manifest(
            ws,
            actor,
            worker_id,
            edits,
            f"worker {worker_id}: update {', '.join(touched)}",
            check=check_settings,
        )
    if body.starred is not None:
        await asyncio.to_thread(stars.set, ws.uid, actor.user_id, worker_id, body.starred)
    if not body.webhook_secret_rotate:
        return None
    secret, _token = await asyncio.to_thread(hooks.rotate, ws.uid, worker_id)
    return secret


async def delete(
    ws: Workspace, actor: Actor, worker_id: str, stars: StarStore | None = None
) -> Deleted:
    """Delete the worker in one commit (refused while it is an MCP tool); its stars go too."""
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
    if stars is not None:
        await asyncio.to_thread(stars.forget_worker, ws.uid, worker_id)
    return Deleted(deleted=True, id=worker_id, sha=result.short)


def asset(ws: Workspace, worker_id: str) -> assets.Asset:
    """The worker as a versioned asset: its folder; a rollback must leave a valid worker."""
    return assets.Asset(
        kind="worker", id=worker_id, path=paths.worker_dir(worker_id),
        rollback_message=f"rollback: restore {worker_id} to {{sha}}", unknown=NOT_FOUND,
        exists=lambda: ws.workers.get(worker_id) is not None, check_id=paths.check_worker_id,
        check=lambda files: validate_worker(worker_id, files),
    )


async def versions(ws: Workspace, worker_id: str, limit: int, offset: int) -> list[Version]:
    return await assets.versions(ws, asset(ws, worker_id), limit, offset)


async def version_files(ws: Workspace, worker_id: str, sha: str) -> VersionFiles:
    return await assets.version_files(ws, asset(ws, worker_id), sha)


async def rollback(ws: Workspace, actor: Actor, worker_id: str, sha: str) -> None:
    await assets.rollback(ws, actor, asset(ws, worker_id), sha)
    ws.workers.reload([worker_id])


def sample_input(ws: Workspace, worker_id: str) -> dict[str, Any]:
    entry = entry_or_404(ws, worker_id)
    if entry.manifest is None or entry.manifest.example_input is None:
        raise NotFound(f"Worker {worker_id} declares no example_input")
    return entry.manifest.example_input


async def bundle_zip(ws: Workspace, worker_id: str) -> bytes:
    """The worker's files (secret-bearing ones left out) as a ZIP under `<id>/`."""
    return await asyncio.to_thread(_bundle_zip, ws, worker_id)


def _bundle_zip(ws: Workspace, worker_id: str) -> bytes:
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
    return ReloadResult(
        status="success", workers_loaded=len(ws.workers), committed=synced.committed, errors=errors
    )

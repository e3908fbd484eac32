"""Workspace export/import bundles (REFERENCE §2.7): a ZIP of workers/, contexts/,
workspace.md, issues/ and a workspace.json summary, built from main; importing one restores it in
one commit and never overwrites (workers remapped, packs and issues skipped when taken)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from floom_git import paths
from floom_git.codec import dump_json, load_yaml
from floom_git.errors import FloomError, InvalidInput, PayloadTooLarge
from floom_git.schemas.manifest import Manifest
from floom_git.schemas.sharing import ImportResult, Skipped
from floom_git.services import issues
from floom_git.services.actor import Actor
from floom_git.services.archive import read_zip
from floom_git.services.registry import validate_worker
from floom_git.services.sharing import free_worker_id, renamed, taken_worker_ids
from floom_git.services.workspaces import Workspace
from floom_git.storage import repo_info
from floom_git.storage.git_types import Commit, Tree, entry_names
from floom_git.storage.repo import Changeset, WorkspaceRepo

BUNDLE_NAME = "workeros-workspace-template.zip"
SUMMARY = "workspace.json"
ISSUES_PREFIX = "issues"
KNOWN_TOP = {paths.WORKERS_DIR, paths.CONTEXTS_DIR, ISSUES_PREFIX, paths.WORKSPACE_MD, SUMMARY}


def _folders(repo: WorkspaceRepo, tip: Commit | None, top: str) -> list[str]:
    tree = repo.entry(tip, top)
    if not isinstance(tree, Tree):
        return []
    return sorted(entry_names(tree, folders_only=True))


# -- export ------------------------------------------------------------------------------------
async def export_zip(ws: Workspace) -> bytes:
    """The bundle of main as it is now. Secret-bearing files never leave; secret values live
    outside the repository and so are never in it."""
    return await asyncio.to_thread(_export_zip, ws)


def _export_zip(ws: Workspace) -> bytes:
    repo = ws.repo
    tip = repo.tip()
    entries: dict[str, bytes] = {}
    workers: list[dict[str, Any]] = []
    contexts: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    secrets_needed: list[str] = []
    connections_needed: list[str] = []
    for wid in _folders(repo, tip, paths.WORKERS_DIR):
        base = paths.worker_dir(wid)
        files = {
            p: b.data for p, b in repo.files_at(tip, base).items() if not paths.is_secret_file(p)
        }
        try:
            m = validate_worker(wid, files)
        except FloomError as exc:
            # An invalid worker would make the whole bundle refuse to import.
            skipped.append({"type": "worker", "id": wid, "reason": exc.message})
            continue
        for rel, data in files.items():
            entries[f"{base}/{rel}"] = data
        conns = m.connection_slugs
        workers.append({"id": wid, "name": m.title, "trigger_type": m.trigger_type,
                        "required_secrets": list(m.exec.secrets), "required_connections": conns,
                        "file_count": len(files)})
        secrets_needed += [s for s in m.exec.secrets if s not in secrets_needed]
        connections_needed += [c for c in conns if c not in connections_needed]
    for name in _folders(repo, tip, paths.CONTEXTS_DIR):
        if not paths.CONTEXT_NAME_RE.match(name):
            continue
        base = paths.context_dir(name)
        files = {
            p: b.data for p, b in repo.files_at(tip, base).items() if not paths.is_secret_file(p)
        }
        meta = _context_meta(files.get(paths.CONTEXT_META), base)
        if meta.get("sensitive") is True:  # marked to stay in this workspace (context.yml)
            skipped.append({"type": "context", "id": name, "reason": "sensitive context pack"})
            continue
        for rel, data in files.items():
            entries[f"{base}/{rel}"] = data
        contexts.append(
            {
                "name": name,
                "file_count": len([p for p in files if p != paths.CONTEXT_META]),
                "writeable": bool(meta.get("writeable", False)),
            }
        )
    md = repo.read_blob(tip, paths.WORKSPACE_MD)
    if md is not None:
        entries[paths.WORKSPACE_MD] = md
    issue_files = issues.export_files(repo, tip)
    for name, data in issue_files.items():
        entries[f"{ISSUES_PREFIX}/{name}"] = data
    summary = {
        "schema_version": 1,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "workspace_id": ws.id,
        "sha": str(tip.id)[:7] if tip else None,
        "workers": workers,
        "contexts": contexts,
        "has_workspace_md": md is not None,
        "required_secrets": secrets_needed,
        "required_connections": connections_needed,
        "counts": {"workers": len(workers), "contexts": len(contexts),
                   "issues": len([n for n in issue_files if n.endswith(".md")])},
        "skipped": skipped,
    }
    entries[SUMMARY] = dump_json(summary)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
    return buf.getvalue()


def _context_meta(data: bytes | None, base: str) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        meta = load_yaml(data, where=f"{base}/{paths.CONTEXT_META}")
    except InvalidInput:
        return {}
    return meta if isinstance(meta, dict) else {}


# -- import ------------------------------------------------------------------------------------
@dataclass
class Bundle:
    workers: dict[str, dict[str, bytes]] = field(default_factory=dict)
    contexts: dict[str, dict[str, bytes]] = field(default_factory=dict)
    issues: dict[str, bytes] = field(default_factory=dict)
    workspace_md: bool = False
    skipped: list[Skipped] = field(default_factory=list)
    manifests: dict[str, Manifest] = field(default_factory=dict)


def _strip_wrapper(entries: dict[str, bytes]) -> dict[str, bytes]:
    """Accept a bundle re-zipped from its unpacked folder: drop one wrapping directory."""
    tops = {name.split("/", 1)[0] for name in entries}
    if tops & KNOWN_TOP or len(tops) != 1 or not all("/" in n for n in entries):
        return entries
    return {name.split("/", 1)[1]: data for name, data in entries.items()}


def parse_bundle(entries: dict[str, bytes], max_file_bytes: int,
                 ignored: Callable[[str], bool] = lambda path: False) -> Bundle:
    """Sort bundle entries into workers, contexts and issues and validate every worker.

    Raises InvalidInput / InvalidManifest naming the bundle path (the import is refused as a
    whole); secret-bearing and unknown files are skipped and reported.
    """
    bundle = Bundle()
    for name, data in sorted(_strip_wrapper(entries).items()):
        if len(data) > max_file_bytes:
            raise PayloadTooLarge(f"bundle: '{name}' is larger than {max_file_bytes} bytes")
        if paths.is_secret_file(name):
            bundle.skipped.append(Skipped(type="file", id=name, reason="secret-bearing file"))
            continue
        if ignored(name):
            bundle.skipped.append(Skipped(type="file", id=name, reason="ignored by .gitignore"))
            continue
        top, _, rest = name.partition("/")
        folder, _, rel = rest.partition("/")
        if top == paths.WORKERS_DIR and rel:
            if not paths.WORKER_ID_RE.match(folder):
                raise InvalidInput(f"bundle: workers/{folder}: worker folder names are slugs of "
                                   "3-64 characters (a-z, 0-9, '-')")
            bundle.workers.setdefault(folder, {})[rel] = data
        elif top == paths.CONTEXTS_DIR and rel:
            if not paths.CONTEXT_NAME_RE.match(folder):
                raise InvalidInput(f"bundle: contexts/{folder}: invalid context pack name")
            bundle.contexts.setdefault(folder, {})[rel] = data
        elif top == ISSUES_PREFIX and rest and "/" not in rest:
            bundle.issues[rest] = data
        elif name == paths.WORKSPACE_MD:
            bundle.workspace_md = True
        elif name == SUMMARY:
            continue
        else:
            bundle.skipped.append(
                Skipped(type="file", id=name, reason="not part of a workspace bundle")
            )
    for wid, files in bundle.workers.items():
        try:
            bundle.manifests[wid] = validate_worker(wid, files)
        except FloomError as exc:
            raise type(exc)(f"bundle: {exc.message}") from None
    return bundle


def _taken_contexts(repo: WorkspaceRepo, tip: Commit | None, ws: Workspace) -> set[str]:
    names = set(_folders(repo, tip, paths.CONTEXTS_DIR))
    disk = ws.path / paths.CONTEXTS_DIR
    if disk.is_dir():
        names.update(p.name for p in disk.iterdir())
    return names


async def import_bundle(ws: Workspace, actor: Actor, data: bytes, *, max_entries: int,
                        max_total: int, max_file_bytes: int) -> ImportResult:
    """Restore a bundle into `ws` in one commit; never overwrites anything.

    Raises InvalidInput/PayloadTooLarge (nothing committed) for hostile or invalid archives.
    """
    entries = await asyncio.to_thread(read_zip, data, max_entries=max_entries, max_total=max_total)
    bundle = await asyncio.to_thread(parse_bundle, entries, max_file_bytes,
                                     functools.partial(repo_info.is_ignored, ws.repo))

    def build(repo: WorkspaceRepo) -> Changeset:
        tip = repo.tip()
        changes: dict[str, bytes | None] = {}
        skipped = list(bundle.skipped)
        remaps: dict[str, str] = {}
        workers_in: list[str] = []
        taken = taken_worker_ids(repo, tip, ws)
        for wid in sorted(bundle.workers):
            files = bundle.workers[wid]
            if wid in taken:
                mine = {p: b.data for p, b in repo.files_at(tip, paths.worker_dir(wid)).items()}
                if mine == files:
                    skipped.append(
                        Skipped(type="worker", id=wid, reason="an identical worker exists")
                    )
                    continue
                new_id = free_worker_id(wid, taken)
                files = renamed(files, wid, new_id)
                validate_worker(new_id, files)
                remaps[wid] = new_id
            else:
                new_id = wid
            taken.add(new_id)
            workers_in.append(new_id)
            changes.update({f"{paths.worker_dir(new_id)}/{p}": d for p, d in files.items()})
        contexts_in: list[str] = []
        taken_ctx = _taken_contexts(repo, tip, ws)
        for name in sorted(bundle.contexts):
            if name in taken_ctx:
                skipped.append(
                    Skipped(type="context", id=name, reason="a context pack with this name exists")
                )
                continue
            contexts_in.append(name)
            changes.update({f"{paths.context_dir(name)}/{p}": d
                            for p, d in bundle.contexts[name].items()})
        restored = issues.restore(repo, tip, ws, bundle.issues, remaps.get)
        changes.update(restored.changes)
        skipped += [Skipped(type="issue", id=i, reason=why) for i, why in restored.skipped]
        used = [bundle.manifests[w] for w in bundle.workers if remaps.get(w, w) in workers_in]
        result = ImportResult(
            workers_imported=workers_in, contexts_imported=contexts_in,
            issues_imported=restored.imported, skipped=skipped, id_remaps=remaps,
            required_secrets=sorted({s for m in used for s in m.exec.secrets}),
            required_connections=sorted({c for m in used for c in m.connection_slugs}),
            workspace_md_present=bundle.workspace_md, sha=None,
        )
        counts = (f"{len(workers_in)} worker(s), {len(contexts_in)} context(s), "
                  f"{len(restored.imported)} issue(s)")
        return Changeset(dict(changes), f"workspace: import bundle ({counts})", result=result)

    committed = await ws.writer.write(build, actor.signature)
    result: ImportResult = committed.result  # type: ignore[assignment]
    result.sha = committed.short
    return result

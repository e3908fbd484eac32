"""Context packs: folders under contexts/<name>/ with optional context.yml metadata.

Files are read from the working tree (what people edit) and written through the workspace
writer, one commit per request.
"""

from __future__ import annotations

import asyncio
import base64
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floom_git import paths
from floom_git.codec import dump_yaml, load_yaml
from floom_git.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from floom_git.schemas.api import (
    ContextCreate,
    ContextDetail,
    ContextFileIn,
    ContextFileOut,
    ContextSummary,
    Deleted,
    UploadResult,
    Version,
    VersionFiles,
    WriteResult,
)
from floom_git.services import assets
from floom_git.services.actor import Actor
from floom_git.services.files import content_type, decode_content, file_out, is_text
from floom_git.services.workspaces import Workspace
from floom_git.storage import repo_info, worktree
from floom_git.storage.repo import Changeset, WorkspaceRepo

NOT_FOUND = "Context not found"
SKIP = {"__pycache__", ".venv", "node_modules"}


def _dir(ws: Workspace, name: str) -> Path:
    return Path(_folder(ws, name))


def _folder(ws: Workspace, name: str) -> str:
    """The context's folder on disk, as a string (every write asks on the loop)."""
    return f"{ws.path}/{paths.context_dir(name)}"


def _exists(ws: Workspace, name: str) -> bool:
    # One lstat: a folder, never a symlink to one (every write checks this on the loop).
    return (
        paths.CONTEXT_NAME_RE.match(name or "") is not None
        and worktree.lstat_kind(_folder(ws, name)) == "dir"
    )


def _require(ws: Workspace, name: str) -> Path:
    if not _exists(ws, name):
        raise NotFound(NOT_FOUND)
    return _dir(ws, name)


def _files(ws: Workspace, folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for fname in filenames:
            full = Path(dirpath) / fname
            if full.is_symlink() or fname.startswith(".floom-"):
                continue
            if repo_info.is_ignored(ws.repo, full.relative_to(ws.path).as_posix()):
                continue
            out.append(full.relative_to(folder).as_posix())
    return sorted(out)


def _size(path: Path) -> int:
    return path.stat().st_size


def _meta(folder: Path, name: str) -> dict[str, Any]:
    meta_file = folder / paths.CONTEXT_META
    if not meta_file.is_file():
        return {}
    try:
        meta = load_yaml(
            meta_file.read_bytes(), where=f"{paths.context_dir(name)}/{paths.CONTEXT_META}"
        )
    except InvalidInput:
        return {}
    return meta if isinstance(meta, dict) else {}


def exists(ws: Workspace, name: str) -> bool:
    return _exists(ws, name)


def is_sensitive(ws: Workspace, name: str) -> bool:
    """Whether the pack is marked `sensitive: true` in its context.yml (left out of exports)."""
    return _exists(ws, name) and _meta(_dir(ws, name), name).get("sensitive") is True


def _present(folder: Path, files: list[str]) -> dict[str, int]:
    """Size of each listed file still there: a write replacing a file takes it aside for an
    instant (storage/worktree.py), so a file listed a moment ago is looked for once more
    before it counts as gone."""
    sizes = {f: worktree.settled(_size, folder / f) for f in files}
    return {f: n for f, n in sizes.items() if n is not None}


def _summary(ws: Workspace, name: str) -> tuple[ContextSummary, list[str], dict[str, Any]]:
    folder = _dir(ws, name)
    sizes = _present(folder, _files(ws, folder))
    files = list(sizes)
    meta = _meta(folder, name)
    size = sum(sizes.values())
    summary = ContextSummary(
        name=name,
        description=meta.get("description") if isinstance(meta.get("description"), str) else None,
        visibility=str(meta.get("visibility", "workspace")),
        writeable=bool(meta.get("writeable", False)),
        sensitive=meta.get("sensitive") is True,
        category=meta.get("category") if isinstance(meta.get("category"), str) else None,
        file_count=len([f for f in files if f != paths.CONTEXT_META]),
        size_bytes=size,
    )
    return summary, files, meta


async def list_contexts(ws: Workspace) -> list[ContextSummary]:
    return await asyncio.to_thread(_list_contexts, ws)


def _list_contexts(ws: Workspace) -> list[ContextSummary]:
    base = ws.path / paths.CONTEXTS_DIR
    if not base.is_dir():
        return []
    names = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink())
    return [_summary(ws, n)[0] for n in names if paths.CONTEXT_NAME_RE.match(n)]


async def detail(ws: Workspace, name: str, path_prefix: str | None = None) -> ContextDetail:
    return await asyncio.to_thread(_detail, ws, name, path_prefix)


def _detail(ws: Workspace, name: str, path_prefix: str | None = None) -> ContextDetail:
    folder = _require(ws, name)
    summary, files, meta = _summary(ws, name)
    if path_prefix:
        files = [f for f in files if f.startswith(path_prefix)]
    contents = {f: worktree.settled(Path.read_bytes, folder / f) for f in files}
    outs = [
        file_out(f, data, with_content=False) for f, data in contents.items() if data is not None
    ]
    return ContextDetail(**{f: getattr(summary, f) for f in summary.__struct_fields__},
                         files=outs, metadata=meta)


def _meta_bytes(body: ContextCreate) -> bytes:
    meta: dict[str, Any] = {}
    if body.description:
        meta["description"] = body.description
    meta["visibility"] = body.visibility
    if body.writeable:
        meta["writeable"] = True
    if body.sensitive:
        meta["sensitive"] = True
    if body.category:
        meta["category"] = body.category
    return dump_yaml(meta)


async def create(ws: Workspace, actor: Actor, name: str, body: ContextCreate) -> ContextDetail:
    paths.check_context_name(name)
    base = paths.context_dir(name)

    def build(repo: WorkspaceRepo) -> Changeset:
        if repo.entry(repo.tip(), base) is not None or _exists(ws, name):
            raise Conflict(f"Context {name} already exists")
        return Changeset(
            {f"{base}/{paths.CONTEXT_META}": _meta_bytes(body)}, f"context {name}: create"
        )

    await ws.writer.write(build, actor.signature)
    return await detail(ws, name)


async def delete(ws: Workspace, actor: Actor, name: str) -> Deleted:
    _require(ws, name)
    base = paths.context_dir(name)
    result = await ws.writer.write(
        lambda repo: Changeset({base: None}, f"context {name}: delete"), actor.signature
    )
    return Deleted(deleted=True, id=name, sha=result.short)


def _file_path(ws: Workspace, name: str, path: str) -> tuple[Path, str]:
    full, rel = _file_at(ws, name, path)
    return Path(full), rel


def _file_at(ws: Workspace, name: str, path: str) -> tuple[str, str]:
    """The file's path on disk and in the context; NotFound for no context or a link there."""
    if not _exists(ws, name):
        raise NotFound(NOT_FOUND)
    rel = paths.clean_relpath(path)
    full = f"{_folder(ws, name)}/{rel}"
    if worktree.lstat_kind(full) == "symlink":
        raise NotFound(f"File not found: {rel}")
    return full, rel


async def read_file(ws: Workspace, name: str, path: str) -> tuple[bytes, str]:
    """The file's bytes and content type, as on disk; NotFound naming the path."""
    return await asyncio.to_thread(_read_file, ws, name, path)


def _read_file(ws: Workspace, name: str, path: str) -> tuple[bytes, str]:
    full, rel = _file_path(ws, name, path)
    data = None if full.is_dir() else worktree.settled(Path.read_bytes, full)
    if data is None or repo_info.is_ignored(ws.repo, full.relative_to(ws.path).as_posix()):
        raise NotFound(f"File not found: {rel}")
    return data, content_type(rel)


def body_bytes(body: ContextFileIn) -> bytes:
    """The file a JSON body {content, encoding?} carries."""
    return decode_content(body.content, body.encoding)


def file_json(path: str, data: bytes, ctype: str) -> ContextFileOut:
    """A file as JSON: UTF-8 text as it is, anything else base64."""
    rel = paths.clean_relpath(path)
    if is_text(data):
        return ContextFileOut(path=rel, content=data.decode("utf-8"), is_binary=False,
                              encoding="utf-8", size=len(data), content_type=ctype)
    return ContextFileOut(path=rel, content=base64.b64encode(data).decode("ascii"), is_binary=True,
                          encoding="base64", size=len(data), content_type=ctype)


def _check_write(name: str, rel: str, data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{rel}: file is larger than {max_bytes} bytes")
    if paths.is_secret_file(rel):
        raise InvalidInput(f"path: '{rel}' looks like a secret-bearing file; use secrets")
    if rel == paths.CONTEXT_META:
        _check_meta(name, data)


def _check_meta(name: str, data: bytes | None) -> None:
    """context.yml, when there, is a YAML mapping (or empty)."""
    if data is None:
        return
    where = f"{paths.context_dir(name)}/{paths.CONTEXT_META}"
    meta = load_yaml(data, where=where)
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput(f"{where}: expected a mapping")


async def put_file(
    ws: Workspace, actor: Actor, name: str, path: str, data: bytes, max_bytes: int
) -> WriteResult:
    _, rel = _file_at(ws, name, path)
    _check_write(name, rel, data, max_bytes)
    full = f"{paths.context_dir(name)}/{rel}"
    result = await ws.writer.write(
        lambda repo: Changeset({full: data}, f"context {name}: update {rel}"), actor.signature
    )
    return WriteResult(path=rel, sha=result.short, changed=result.sha is not None, size=len(data))


async def delete_file(ws: Workspace, actor: Actor, name: str, path: str) -> WriteResult:
    full_path, rel = _file_path(ws, name, path)
    if not full_path.is_file():
        raise NotFound(f"File not found: {rel}")
    full = f"{paths.context_dir(name)}/{rel}"
    result = await ws.writer.write(
        lambda repo: Changeset({full: None}, f"context {name}: delete {rel}"), actor.signature
    )
    return WriteResult(path=rel, sha=result.short, changed=result.sha is not None)


@dataclass(frozen=True)
class Upload:
    """A multipart upload as read off the wire: file parts (their filename, URL-encoded, is the
    path) and the text fields `path_prefix` and `create_if_missing`."""

    parts: list[tuple[str, bytes]]
    fields: dict[str, str]


def _upload_files(upload: Upload, max_entries: int) -> dict[str, bytes]:
    """The upload's files by cleaned path, `path_prefix` joined in front."""
    if len(upload.parts) > max_entries:
        raise PayloadTooLarge(f"upload holds more than {max_entries} files")
    prefix = upload.fields.get("path_prefix", "").strip().strip("/")
    files: dict[str, bytes] = {}
    for filename, data in upload.parts:
        name = urllib.parse.unquote(filename)
        rel = paths.clean_relpath(f"{prefix}/{name}" if prefix else name, field="filename")
        if rel in files:
            raise InvalidInput(f"filename: '{rel}' is uploaded twice")
        files[rel] = data
    return files


async def upload(
    ws: Workspace, actor: Actor, name: str, upload: Upload, max_bytes: int, max_entries: int,
) -> UploadResult:
    """Write every file of the upload in one commit; `create_if_missing` (1/true/yes) makes the
    pack when there is none."""
    files = _upload_files(upload, max_entries)
    if not files:
        raise InvalidInput("files: the upload holds no files")
    create_if_missing = upload.fields.get("create_if_missing", "").strip().lower() in (
        "1",
        "true",
        "yes",
    )
    paths.check_context_name(name)
    missing = not _exists(ws, name)
    if missing and not create_if_missing:
        raise NotFound(NOT_FOUND)
    total = 0
    for rel, data in files.items():
        _check_write(name, rel, data, max_bytes)
        total += len(data)
        if total > max_bytes:
            raise PayloadTooLarge(f"files: the upload is larger than {max_bytes} bytes")
    base = paths.context_dir(name)
    changes: dict[str, bytes | None] = {f"{base}/{rel}": d for rel, d in files.items()}
    if missing:
        changes.setdefault(f"{base}/{paths.CONTEXT_META}", _meta_bytes(ContextCreate()))
    result = await ws.writer.write(
        lambda repo: Changeset(dict(changes), f"context {name}: upload {len(files)} file(s)"),
        actor.signature,
    )
    return UploadResult(uploaded=sorted(files), sha=result.short, changed=result.sha is not None)


async def set_meta(ws: Workspace, actor: Actor, name: str, key: str, value: Any) -> ContextDetail:
    """Set one key of the pack's context.yml (None removes it) in one commit."""
    _require(ws, name)
    where = f"{paths.context_dir(name)}/{paths.CONTEXT_META}"

    def build(repo: WorkspaceRepo) -> Changeset:
        current = repo.read_blob(repo.tip(), where)
        meta = load_yaml(current, where=where) if current else {}
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta[key] = value
        if value is None:
            del meta[key]
            return Changeset({where: dump_yaml(meta)}, f"context {name}: unset {key}")
        shown = str(value).lower() if isinstance(value, bool) else value
        return Changeset({where: dump_yaml(meta)}, f"context {name}: set {key} to {shown}")

    await ws.writer.write(build, actor.signature)
    return await detail(ws, name)


def asset(ws: Workspace, name: str) -> assets.Asset:
    """The pack as a versioned asset: its folder; a rollback must leave a readable context.yml."""
    return assets.Asset(
        kind="context", id=name, path=paths.context_dir(name),
        rollback_message=f"rollback: restore context {name} to {{sha}}", unknown=NOT_FOUND,
        exists=lambda: _exists(ws, name), check_id=paths.check_context_name,
        check=lambda files: _check_meta(name, files.get(paths.CONTEXT_META)),
    )


async def versions(ws: Workspace, name: str, limit: int, offset: int) -> list[Version]:
    return await assets.versions(ws, asset(ws, name), limit, offset)


async def version_files(ws: Workspace, name: str, sha: str) -> VersionFiles:
    return await assets.version_files(ws, asset(ws, name), sha)


async def rollback(ws: Workspace, actor: Actor, name: str, sha: str) -> ContextDetail:
    await assets.rollback(ws, actor, asset(ws, name), sha)
    return await detail(ws, name)

"""Worker share links: a random `fls_` token, stored only as a SHA-256 digest in system/ with
its workspace (internal id: a link never reaches a later workspace of the same name) and
worker, gives a public read-only view of the worker's committed files and lets
another workspace import a copy. Also the id rules for copying a worker into a workspace."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import string
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from floom_git import paths
from floom_git.codec import set_top_level
from floom_git.errors import FloomError, InvalidInput, NotFound
from floom_git.schemas.base import plain
from floom_git.schemas.manifest import parse_manifest
from floom_git.schemas.sharing import PublicWorker, ShareImported
from floom_git.services.actor import Actor
from floom_git.services.files import file_out
from floom_git.services.registry import validate_worker
from floom_git.services.workspaces import Workspace, WorkspaceManager
from floom_git.storage import private
from floom_git.storage.git_types import Commit, Tree, entry_names
from floom_git.storage.repo import Changeset, WorkspaceRepo

SHARE_FILE = "share-links.json"
PREFIX = "fls_"
ALPHABET = string.ascii_letters + string.digits
GONE = "Share link not found or revoked"
_LOCK = threading.Lock()  # one writer of the share file per process; flock covers the CLI


@dataclass(frozen=True)
class Share:
    workspace_id: str  # the workspace's internal id (Workspace.uid)
    worker_id: str
    created_by: str
    created_at: str
    expires_at: str | None = None


def _digest(token: str) -> str:
    # Tokens carry ~143 random bits, so a plain hash suffices (ENGINEERING-NOTES §4.3).
    return hashlib.sha256(token.encode()).hexdigest()


class ShareStore:
    """Share links in system/share-links.json: {digest: Share}. Blocking; call off the loop."""

    def __init__(self, system_dir: Path) -> None:
        self.path = system_dir / SHARE_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _LOCK:
            fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield self._load()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        private.write_json(self.path, data)

    def create(self, share: Share) -> str:
        token = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(24))
        with self._locked() as data:
            data[_digest(token)] = asdict(share)
            self._save(data)
        return token

    def resolve(self, token: str) -> Share:
        """The live share for `token`; NotFound (one message for unknown, revoked, expired)."""
        if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > 100:
            raise NotFound(GONE)
        with self._locked() as data:
            row = data.get(_digest(token))
        if row is None:
            raise NotFound(GONE)
        share = Share(**row)
        if share.expires_at and dt.datetime.fromisoformat(share.expires_at) <= _now():
            raise NotFound(GONE)
        return share

    def drop_workspace(self, workspace_id: str) -> int:
        """Forget every link into a deleted workspace (internal id); how many there were."""
        return self._remove(lambda v: v.get("workspace_id") == workspace_id)

    def revoke(self, workspace_id: str, worker_id: str) -> int:
        """Revoke every link to that worker; how many there were."""
        return self._remove(lambda v: v.get("workspace_id") == workspace_id
                            and v.get("worker_id") == worker_id)

    def _remove(self, matches: Callable[[dict[str, Any]], bool]) -> int:
        with self._locked() as data:
            gone = [k for k, v in data.items() if matches(v)]
            for key in gone:
                del data[key]
            if gone:
                self._save(data)
        return len(gone)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- copying a worker into a workspace ---------------------------------------------------------
def taken_worker_ids(repo: WorkspaceRepo, tip: Commit | None, ws: Workspace) -> set[str]:
    """Worker ids in use: committed, on disk (maybe not yet synced) or in the registry."""
    ids: set[str] = set()
    folder = repo.entry(tip, paths.WORKERS_DIR)
    if isinstance(folder, Tree):
        ids.update(entry_names(folder))
    disk = ws.path / paths.WORKERS_DIR
    if disk.is_dir():
        ids.update(p.name for p in disk.iterdir())
    ids.update(e.id for e in ws.workers.all())
    return ids


def free_worker_id(worker_id: str, taken: set[str]) -> str:
    """`worker_id` if free, else the first free `<id>-2`, `<id>-3`... (kept within 64 chars)."""
    if worker_id not in taken:
        return worker_id
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = worker_id[: 64 - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        n += 1


def renamed(files: dict[str, bytes], old: str, new: str) -> dict[str, bytes]:
    """The worker's files with its manifest `name` set to `new` (a one-line edit)."""
    if old == new:
        return dict(files)
    text = files[paths.MANIFEST].decode("utf-8")
    return {**files, paths.MANIFEST: set_top_level(text, "name", new).encode("utf-8")}


def committed_files(ws: Workspace, worker_id: str) -> dict[str, bytes]:
    """A worker's files at main, without secret-bearing files; NotFound when absent."""
    if not paths.WORKER_ID_RE.match(worker_id or ""):
        raise NotFound(GONE)
    blobs = ws.repo.files_at(ws.repo.tip(), paths.worker_dir(worker_id))
    files = {p: b.data for p, b in blobs.items() if not paths.is_secret_file(p)}
    if paths.MANIFEST not in files:
        raise NotFound(GONE)
    return files


# -- share link use ----------------------------------------------------------------------------
async def create_link(store: ShareStore, ws: Workspace, actor: Actor, worker_id: str,
                      expires_in_days: int | None) -> tuple[str, Share]:
    """A new share link to a committed worker of `ws`: its token and what it shares."""
    return await asyncio.to_thread(_create_link, store, ws, actor, worker_id, expires_in_days)


async def revoke_links(store: ShareStore, ws: Workspace, worker_id: str) -> int:
    """Revoke every link to the worker; how many there were. NotFound for a malformed id."""
    if not paths.WORKER_ID_RE.match(worker_id):
        raise NotFound("Worker not found")
    return await asyncio.to_thread(store.revoke, ws.uid, worker_id)


def _create_link(store: ShareStore, ws: Workspace, actor: Actor, worker_id: str,
                 expires_in_days: int | None) -> tuple[str, Share]:
    try:
        committed_files(ws, worker_id)  # only committed workers can be shared
    except NotFound:
        raise NotFound("Worker not found") from None
    expires = (_now() + dt.timedelta(days=expires_in_days)).isoformat() if expires_in_days else None
    share = Share(ws.uid, worker_id, actor.user_id, _now().isoformat(), expires)
    return store.create(share), share


def _source(manager: WorkspaceManager, share: Share) -> Workspace:
    ws = manager.by_uid(share.workspace_id)
    if ws is None:
        raise NotFound(GONE)
    return ws


async def public_worker(manager: WorkspaceManager, store: ShareStore, token: str,
                        worker_id: str | None = None) -> PublicWorker:
    """The public view a token grants; `worker_id` (from the URL) must be the shared worker."""
    return await asyncio.to_thread(_public_worker, manager, store, token, worker_id)


def _public_worker(manager: WorkspaceManager, store: ShareStore, token: str,
                   worker_id: str | None) -> PublicWorker:
    share = store.resolve(token)
    if worker_id is not None and worker_id != share.worker_id:
        raise NotFound(GONE)
    ws = _source(manager, share)
    files = committed_files(ws, share.worker_id)
    try:
        m = parse_manifest(files[paths.MANIFEST], where=paths.MANIFEST, folder=share.worker_id)
    except FloomError:
        m = None
    tip = ws.repo.tip()
    return PublicWorker(
        id=share.worker_id,
        name=m.title if m else share.worker_id,
        description=m.effective_description if m else None,
        version=m.version if m else None,
        mode=m.mode if m else None,
        runtime=m.exec.runtime if m else None,
        trigger_type=m.trigger_type if m else None,
        inputs=[plain(f) for f in m.exec.inputs] if m else [],
        outputs=[plain(f) for f in m.exec.outputs] if m else [],
        example_input=m.example_input if m else None,
        manifest_yaml=files[paths.MANIFEST].decode("utf-8", errors="replace"),
        files=[file_out(p, d) for p, d in sorted(files.items())],
        sha=str(tip.id)[:7] if tip else None,
    )


async def import_from_share(manager: WorkspaceManager, store: ShareStore, ws: Workspace,
                            actor: Actor, token: str) -> ShareImported:
    """Copy the shared worker into `ws` in one commit; a taken id gets `-2`, `-3`..."""
    share = await asyncio.to_thread(store.resolve, token)
    source = _source(manager, share)
    files = await asyncio.to_thread(committed_files, source, share.worker_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        new_id = free_worker_id(share.worker_id, taken_worker_ids(repo, repo.tip(), ws))
        copy = renamed(files, share.worker_id, new_id)
        try:
            validate_worker(new_id, copy)
        except InvalidInput as exc:
            raise InvalidInput(f"shared worker cannot be imported: {exc.message}") from None
        base = paths.worker_dir(new_id)
        return Changeset({f"{base}/{p}": d for p, d in copy.items()},
                         f"worker: import {new_id} from share", result=new_id)

    result = await ws.writer.write(build, actor.signature)
    new_id = str(result.result)
    return ShareImported(worker_id=new_id, source_worker_id=share.worker_id,
                         url=f"/api/workers/{new_id}", sha=result.short)

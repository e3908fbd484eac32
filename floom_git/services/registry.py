"""The in-memory worker registry: every folder under workers/ in the working tree, parsed.

The working tree is what people edit, so the registry reads it (not HEAD): an on-disk edit
shows at once, and an invalid manifest shows as a worker with status "error" and the message,
never dropped and never breaking the list. Reloads are per worker folder.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from floom_git import paths
from floom_git.errors import FloomError, InvalidInput, InvalidManifest
from floom_git.schemas.manifest import Manifest, parse_manifest
from floom_git.storage import repo_info
from floom_git.storage.repo import WorkspaceRepo

SKIP_DIRS = {"__pycache__", ".venv", "node_modules", ".git", ".mypy_cache", ".pytest_cache"}


@dataclass
class WorkerEntry:
    id: str
    manifest: Manifest | None
    error: str | None
    manifest_text: str
    files: list[str] = field(default_factory=list)
    updated_at: str | None = None

    @property
    def status(self) -> str:
        if self.manifest is None:
            return "error"
        if self.manifest.archived:
            return "archived"
        if self.manifest.paused or self.manifest.enabled is False:
            return "paused"
        return "ready"


def owners(changed: Iterable[str]) -> set[str]:
    """The ids of the workers owning any of the repository paths `changed`."""
    ids = {p.split("/")[1] for p in changed if p.startswith("workers/") and p.count("/") >= 1}
    ids.discard("")
    return ids


def worker_files(root: Path, folder: Path, repo: WorkspaceRepo | None = None) -> list[str]:
    """Files of a worker folder relative to it: no symlinks, caches, ignored or temp files."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() or name.startswith(".floom-") or name.endswith((".pyc", ".pyo")):
                continue
            rel_to_root = full.relative_to(root).as_posix()
            if repo is not None and repo_info.is_ignored(repo, rel_to_root):
                continue
            out.append(full.relative_to(folder).as_posix())
    return sorted(out)


def load_entry(root: Path, worker_id: str, repo: WorkspaceRepo | None = None) -> WorkerEntry | None:
    folder = root / paths.WORKERS_DIR / worker_id
    if not folder.is_dir() or folder.is_symlink():
        return None
    files = worker_files(root, folder, repo)
    if not files:
        return None
    where = f"{paths.WORKERS_DIR}/{worker_id}/{paths.MANIFEST}"
    newest = max((folder / f).stat().st_mtime for f in files)
    updated = dt.datetime.fromtimestamp(newest, dt.UTC).isoformat()
    if paths.MANIFEST not in files:
        return WorkerEntry(worker_id, None, f"{where}: file is missing", "", files, updated)
    raw = (folder / paths.MANIFEST).read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        # Only worker.yml's content matters here; the others need to exist, not be read.
        manifest = validate_worker(
            worker_id, {f: raw if f == paths.MANIFEST else b"" for f in files}
        )
    except FloomError as exc:
        return WorkerEntry(worker_id, None, exc.message, text, files, updated)
    return WorkerEntry(worker_id, manifest, None, text, files, updated)


class WorkerRegistry:
    """Reloads run from many threads (commit listeners, the watcher, reload requests). Each
    reload takes a ticket before it reads the disk; a result is applied only if no reload that
    started later has already been applied, so an early read of a half-written folder can
    never replace what a later read saw."""

    def __init__(self, repo: WorkspaceRepo) -> None:
        self.repo = repo
        self.root = repo.path
        self._entries: dict[str, WorkerEntry] = {}
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._applied: dict[str, int] = {}  # worker id -> ticket of the reload applied last
        self._applied_all = -1
        self.reloads = 0  # reload calls made (the move pipeline: one per move that owns a worker)

    def reload_all(self) -> int:
        self.reloads += 1
        ticket = next(self._tickets)
        base = self.root / paths.WORKERS_DIR
        ids = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        fresh = {}
        for wid in ids:
            entry = load_entry(self.root, wid, self.repo)
            if entry is not None:
                fresh[wid] = entry
        with self._lock:
            if ticket < self._applied_all:
                return len(self._entries)
            # Keep what single-worker reloads newer than this scan found.
            for wid, applied in self._applied.items():
                if applied > ticket:
                    if wid in self._entries:
                        fresh[wid] = self._entries[wid]
                    else:
                        fresh.pop(wid, None)
            self._entries = fresh
            self._applied_all = ticket
            self._applied = {w: t for w, t in self._applied.items() if t > ticket}
        return len(fresh)

    def reload(self, ids: Iterable[str]) -> None:
        self.reloads += 1
        for wid in set(ids):
            ticket = next(self._tickets)
            entry = load_entry(self.root, wid, self.repo)
            with self._lock:
                if ticket < max(self._applied.get(wid, -1), self._applied_all):
                    continue
                self._applied[wid] = ticket
                if entry is None:
                    self._entries.pop(wid, None)
                else:
                    self._entries[wid] = entry

    def reload_paths(self, changed: Iterable[str]) -> set[str]:
        """Reload the workers that own any of the repository paths `changed`; returns their ids."""
        ids = owners(changed)
        self.reload(ids)
        return ids

    def get(self, worker_id: str) -> WorkerEntry | None:
        return self._entries.get(worker_id)

    def all(self) -> list[WorkerEntry]:
        with self._lock:
            return [self._entries[k] for k in sorted(self._entries)]

    def __len__(self) -> int:
        return len(self._entries)


def validate_worker(
    worker_id: str, files: dict[str, bytes], *, prefix: str = "workers"
) -> Manifest:
    """Check a worker's complete file set (as a push or an API write would leave it).

    Raises InvalidManifest/InvalidInput naming the file: bad id, missing or invalid worker.yml,
    name != folder, missing entry file, secret-bearing files.
    """
    base = f"{prefix}/{worker_id}"
    if not paths.WORKER_ID_RE.match(worker_id):
        raise InvalidInput(
            f"{base}: folder name must be a slug of 3-64 characters (a-z, 0-9, '-')"
        )
    if paths.MANIFEST not in files:
        raise InvalidManifest(f"{base}/{paths.MANIFEST}: file is missing")
    manifest = parse_manifest(
        files[paths.MANIFEST], where=f"{base}/{paths.MANIFEST}", folder=worker_id
    )
    if manifest.entry not in files:
        raise InvalidManifest(
            f"{base}/{paths.MANIFEST}: entry file '{manifest.entry}' is missing from the worker "
            "- at `$.exec.entry`"
        )
    for path in files:
        if paths.is_secret_file(path):
            raise InvalidInput(f"{base}/{path}: secret-bearing files are not allowed; use secrets")
    return manifest

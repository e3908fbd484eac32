"""Reconciliation of a workspace's working tree with `main`: find real on-disk differences,
reload the workers they touch, and commit the valid ones as `sync: on-disk edit to <paths>`.

Used by the file watcher (runtime/watcher.py) and by POST /workers/reload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from floom_git import paths
from floom_git.errors import FloomError
from floom_git.schemas.issue import FILE_RE, parse_issue_file
from floom_git.services import freeze
from floom_git.services.moves import Moved
from floom_git.services.registry import SKIP_DIRS, validate_worker, worker_files
from floom_git.services.workspaces import Workspace
from floom_git.storage import repo_info, worktree
from floom_git.storage.main_tree import MainTree
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from floom_git.storage.repo_info import is_ignored

log = logging.getLogger("floom_git.sync")

SHOWN_PATHS = 3
# Names that are never content: the server's own temp files and editors' swap/backup files.
TRANSIENT_RE = re.compile(r"^\.floom-|\.sw.$|~$|^\.#|^\.DS_Store$|\.py[cod]$")


def is_transient(rel: str) -> bool:
    """True for paths reconciliation never looks at (temp files, caches, .git)."""
    parts = rel.split("/")
    if any(p == ".git" or p in SKIP_DIRS for p in parts[:-1]) or parts[-1] == ".git":
        return True
    return bool(TRANSIENT_RE.search(parts[-1]))


def message(changed: list[str]) -> str:
    """`sync: on-disk edit to a, b, c` or, past three paths, `a, b and 12 more`."""
    if len(changed) <= SHOWN_PATHS:
        shown = ", ".join(changed)
    else:
        shown = f"{', '.join(changed[: SHOWN_PATHS - 1])} and {len(changed) - SHOWN_PATHS + 1} more"
    return f"sync: on-disk edit to {shown}"


async def reconcile(ws: Workspace, candidates: Iterable[str] | None = None, *,
                    reloaded: bool = False) -> Moved:
    """Commit the valid on-disk differences from `main` among `candidates` (None: the whole tree).

    Workers touched are reloaded first (unless `reloaded`: the watcher reloads them as their
    events arrive), so an invalid manifest shows as `status: "error"` with its message; that
    worker's changes stay on disk, uncommitted, while other valid changes in the batch are
    committed. Secret-bearing, gitignored and symlinked files are never committed. Ends in the
    move pipeline (source "sync"), also when it only left invalid edits on disk.
    """
    if freeze.state(ws) is not None:
        return Moved("sync")  # on-disk edits stay on disk; unfreezing commits them
    wanted = None if candidates is None else {c.strip("/") for c in candidates if c.strip("/")}
    if wanted is None:
        await asyncio.to_thread(ws.workers.reload_all)
    elif not reloaded:
        await asyncio.to_thread(ws.workers.reload_paths, wanted)
    max_bytes = ws.settings.max_file_bytes
    if wanted is not None:
        # Most batches are the server's own writes and pushes: the disk already equals main,
        # and finding that out needs no lock. Only real differences queue for the writer,
        # which plans again under the lock against the tip of that moment.
        changes, invalid = await asyncio.to_thread(plan, ws.repo, wanted, max_bytes)
        if not changes and not invalid:
            return Moved("sync")
    refused: dict[str, str] = {}

    def build(repo: WorkspaceRepo) -> Changeset | None:
        changes, invalid = plan(repo, wanted, max_bytes)
        refused.clear()
        refused.update(invalid)
        if not changes:
            return None
        return Changeset(dict(changes), message(sorted(changes)), from_disk=True)

    author = signature(ws.settings.sync_author_name, ws.settings.sync_author_email)
    # A from_disk commit never writes the files back, so an edit made after they were read
    # stays on disk as a difference that the next sync commits.
    result = await ws.writer.write(build, author)
    out = await ws.moves.main_moved(
        result.parent, result.sha, sorted(result.paths) if result.sha else [], author.email,
        "sync", invalid=refused, changed_again=list(result.unsynced))
    if out.sha:
        log.info("workspace %s: %s (%s)", ws.id, message(out.committed), out.short)
    for where, why in out.invalid.items():
        log.warning("workspace %s: on-disk change to %s not committed: %s", ws.id, where, why)
    return out


def plan(
    repo: WorkspaceRepo, candidates: set[str] | None, max_bytes: int
) -> tuple[dict[str, bytes | None], dict[str, str]]:
    """The changes that make `main` match the disk for `candidates`, and what was refused.

    Blocking; runs inside the writer's lock so the comparison is against the current tip and
    the bytes committed are the bytes on disk now. Files of a worker folder are always taken
    together, so an edit held back while its manifest was invalid goes in once it is fixed.
    """
    tree = MainTree(repo)
    root = repo.path
    disk = _Disk(root)
    if candidates is None:
        found = set(repo_info.worktree_changes(repo)) | tree.apart_at_head()
    else:
        found = _expand(tree, disk, candidates)
    for wid in {w for w in map(_worker_id, found) if w}:
        found |= _expand(tree, disk, {paths.worker_dir(wid)})
    changes: dict[str, bytes | None] = {}
    invalid: dict[str, str] = {}
    for path in sorted(found):
        if is_transient(path):
            continue
        in_main = tree.blob_id(path) is not None
        kind, data = disk.read(path, max_bytes)
        if kind in ("missing", "dir"):
            if in_main:
                changes[path] = None
            continue
        if kind == "file" and data is not None and tree.holds(path, data):
            continue
        if kind == "too-large" and tree.holds_file(path, root / path):
            continue
        if not in_main and is_ignored(repo, path):
            continue
        refusal = _refusal(path, kind, data)
        if refusal:
            invalid[path] = refusal
            continue
        changes[path] = data
    # What stood where a file or folder of the wrong kind is refused stays in main too: a
    # worker folder turned into a file is not deleted, nor is workspace.yml turned into a folder.
    for where in {m[0] for p in invalid if (m := paths.misplaced(p)) is not None}:
        for path in [p for p in changes if p == where or p.startswith(where + "/")]:
            del changes[path]
    for wid in sorted({w for w in map(_worker_id, changes) if w}):
        why = _worker_invalid(repo, wid)
        if why:
            invalid[paths.worker_dir(wid)] = why
            for path in [p for p in changes if _worker_id(p) == wid]:
                del changes[path]
    return changes, invalid


def _refusal(path: str, kind: str, data: bytes | None) -> str | None:
    """Why the file at `path` is not committed, as a line naming it (None: commit it)."""
    if kind != "file":
        return f"{path}: {_KIND_REFUSED.get(kind, 'not a regular file')}"
    try:
        paths.clean_relpath(path)
    except FloomError as exc:  # names the field ("path"), not the file
        return f"{path}: {exc.message}"
    if paths.is_secret_file(path):
        return f"{path}: secret-bearing files are never committed; use secrets"
    if (wrong := paths.kind_refusal(path)) is not None:
        return wrong
    if path.startswith(paths.ISSUES_DIR + "/") and FILE_RE.match(path.rsplit("/", 1)[-1]):
        try:
            parse_issue_file(data or b"", where=path)
        except FloomError as exc:
            return exc.message
    return None


_KIND_REFUSED = {  # what disk.read found, when it is no file to commit
    "symlink": "symlinks are not committed",
    "too-large": "file is over the size limit",
    "unreadable": "file cannot be read by the server",
}


def _worker_invalid(repo: WorkspaceRepo, wid: str) -> str | None:
    """Why the worker folder as it is on disk must not be committed (None: fine or deleted)."""
    folder = repo.path / paths.worker_dir(wid)
    if folder.is_symlink():
        return f"{paths.worker_dir(wid)}: symlinks are not committed"
    if not folder.is_dir():
        return None
    files = worker_files(repo.path, folder, repo)
    if not files:
        return None
    try:
        manifest = (folder / paths.MANIFEST).read_bytes() if paths.MANIFEST in files else b""
        validate_worker(wid, {f: manifest if f == paths.MANIFEST else b"" for f in files})
    except FloomError as exc:
        return exc.message
    except OSError as exc:
        return f"{paths.worker_dir(wid)}/{paths.MANIFEST}: {exc.strerror}"
    return None


def _worker_id(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == paths.WORKERS_DIR and parts[1]:
        return parts[1]
    return None


def _expand(tree: MainTree, disk: _Disk, candidates: set[str]) -> set[str]:
    """Candidate paths as files: a folder stands for every file under it on disk and in `main`.

    Walking folders on disk also catches files created before the watcher saw their folder.
    """
    out: set[str] = set()
    for rel in candidates:
        in_main = tree.is_folder(rel)
        on_disk = disk.kind(rel) == "dir"
        out.update(tree.files_under(rel))
        if on_disk:
            out.update(disk.walk(rel))
        if not (in_main and on_disk):  # a file on one side at least
            out.add(rel)
    return out


class _Disk:
    """lstat-based reads that never follow a symlink, in the file or in any folder above it."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._kinds: dict[str, str] = {"": "dir"}

    def kind(self, rel: str) -> str:
        """dir, file, symlink (also anything under a symlinked folder), other or missing."""
        if rel not in self._kinds:
            parent = self.kind(rel.rpartition("/")[0])
            if parent == "dir":
                self._kinds[rel] = worktree.lstat_kind(os.path.join(self.root, rel))
            else:
                self._kinds[rel] = "symlink" if parent == "symlink" else "missing"
        return self._kinds[rel]

    def walk(self, rel: str) -> Iterable[str]:
        cut = len(self.root) + 1
        for dirpath, dirnames, filenames in os.walk(os.path.join(self.root, rel)):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and d != ".git"]
            base = dirpath[cut:]
            for name in filenames:
                yield f"{base}/{name}"

    def read(self, rel: str, max_bytes: int) -> tuple[str, bytes | None]:
        kind = self.kind(rel.rpartition("/")[0])
        if kind != "dir":
            return ("symlink" if kind == "symlink" else "missing"), None
        full = os.path.join(self.root, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return "missing", None
        if stat.S_ISLNK(st.st_mode):
            return "symlink", None
        if stat.S_ISDIR(st.st_mode):
            return "dir", None
        if not stat.S_ISREG(st.st_mode):
            return "other", None
        if st.st_size > max_bytes:
            return "too-large", None
        try:
            with open(full, "rb") as fh:
                return "file", fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return "missing", None
        except OSError:
            return "unreadable", None

"""Bringing a working tree and its index from one commit's tree to another's without losing a
person's edit: a file is overwritten or deleted only while its bytes on disk are still what the
server committed there (or already what it commits now). The check is made on the file itself,
taken aside by an atomic rename, so a save landing at that very moment is put back, never lost;
a crash in between is undone by restore_aside() at recovery.

Every tree change is handled: file <-> folder at any depth, the executable bit, deletes of whole
folders, renames. A path the person changed is left as it is and reported (`kept`); the watcher
then commits it on top, so history holds the server's version and then the person's. Blocking.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pygit2
from pygit2.enums import FileMode, ObjectType

from floom_git import paths
from floom_git.storage import index_file, new_files
from floom_git.storage.new_files import NewBytes

T = TypeVar("T")
TEMP_PREFIX = new_files.TEMP_PREFIX  # temporary files, next to the file they replace
ASIDE_PREFIX = TEMP_PREFIX + "aside-"  # a file taken aside for a moment: .floom-aside-<hex>-<name>
SETTLE_WAIT = 0.002  # a file replaced by the server is away for microseconds (replace_if)
CACHE_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}  # expendable, never content


@dataclass(frozen=True)
class Entry:
    """A file of a tree: its blob and mode."""

    oid: pygit2.Oid
    mode: int

    @property
    def executable(self) -> bool:
        return self.mode == FileMode.BLOB_EXECUTABLE


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # Paths where the disk holds something else than the new tree: a person's edit (or a folder
    # of theirs in the way), left alone for the watcher to commit on top.
    kept: list[str] = field(default_factory=list)


Entries = dict[str, "Entry | None"]  # path -> the file there, or None


def file_entry(tree: pygit2.Tree | None, path: str) -> Entry | None:
    """The regular file at `path` in `tree` (None for a folder, a link, a submodule or nothing)."""
    if tree is None:
        return None
    try:
        obj = tree[path]
    except KeyError:
        return None
    if obj.type != ObjectType.BLOB or obj.filemode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
        return None
    return Entry(obj.id, obj.filemode)


def sync(
    repo: pygit2.Repository,
    root: Path,
    old: pygit2.Tree | None,
    new: pygit2.Tree | None,
    files: Iterable[str],
    *,
    write: bool = True,
    dry_run: bool = False,
) -> Outcome:
    """Make disk and index hold `new` for `files` (every file path that may differ between `old`
    and `new`); a file is replaced or removed only while the disk holds `old`'s or `new`'s
    version of it. With write=False the disk is left alone and only the index follows `new`.
    With dry_run=True nothing changes; the outcome says what would be kept.
    """
    disk = _Disk(root, Path(repo.path))
    wanted = sorted({f for f in files if _safe(f)})
    before = {p: file_entry(old, p) for p in wanted}
    after = {p: file_entry(new, p) for p in wanted}
    out = Outcome()
    if write:
        _remove(disk, wanted, before, after, out, dry_run)
        _write(repo, disk, wanted, before, after, out, dry_run)
    else:
        out.kept = [p for p in wanted if not disk.holds(p, after[p])]
    if not dry_run:
        _update_index(repo, disk, wanted, after)
    return out


def _remove(disk: _Disk, wanted: list[str], before: Entries, after: Entries, out: Outcome,
            dry_run: bool) -> None:
    """Delete the files that `new` no longer has (deepest first), where the disk holds ours."""
    for path in sorted((p for p in wanted if after[p] is None), key=lambda p: -p.count("/")):
        kind = disk.kind(path)
        if kind == "missing":
            continue
        if kind == "dir" and before[path] is None:
            continue  # a folder stands where nothing of ours was: its files speak for it
        if kind != "file" or not disk.matches(path, before[path]):
            out.kept.append(path)
            continue
        if dry_run:
            disk.forget(path)
        elif disk.unlink_if(path, before[path]):
            _prune(disk, path)
        else:
            out.kept.append(path)
            continue
        out.removed.append(path)


def _write(repo: pygit2.Repository, disk: _Disk, wanted: list[str], before: Entries, after: Entries,
           out: Outcome, dry_run: bool) -> None:
    """Write the files of `new` (shallowest first) where the disk holds ours, or nothing of
    theirs."""
    for path in sorted((p for p in wanted if after[p] is not None), key=lambda p: p.count("/")):
        target = after[path]
        assert target is not None  # the paths `new` has a file at
        if not disk.parents_free(path):
            out.kept.append(path)  # a file or link of theirs where a folder must be
            continue
        kind = disk.kind(path)
        if kind == "dir" and before[path] is None and disk.clear_dir(path, dry_run):
            kind = "missing"  # only expendable caches were left in a folder that became a file
        if kind == "file" and disk.matches(path, target):
            if not dry_run:
                disk.set_mode(path, target.executable)
            continue
        if kind == "missing" and before[path] is not None:
            out.kept.append(path)  # they deleted it: their deletion is the newer edit
            continue
        edited = kind == "file" and not disk.matches(path, before[path])
        if kind not in ("missing", "file") or edited:
            out.kept.append(path)
            continue
        if dry_run:
            out.written.append(path)
            continue
        blob = repo[target.oid]
        assert isinstance(blob, pygit2.Blob)  # the target tree's files are blobs
        data = blob.data
        if disk.replace_if(path, before[path], data, target.executable):
            out.written.append(path)
        else:
            out.kept.append(path)


def _update_index(repo: pygit2.Repository, disk: _Disk, wanted: list[str], after: Entries) -> None:
    """The index records `new` for every path; with stat data only where the disk holds exactly
    that content, so `git status` shows a person's edit as an unstaged change."""
    index = index_file.load(Path(repo.path))
    if index is None:  # a split or sparse index, or a damaged one: libgit2's way
        _update_libgit2_index(repo, disk, wanted, after)
        return
    for path in wanted:
        entry = after[path]
        if entry is None:
            index.remove(path)
        else:
            index.set(path, entry.oid.raw, entry.mode, disk.stat_if_holds(path, entry))
    index.write(Path(disk.root))


def _update_libgit2_index(repo: pygit2.Repository, disk: _Disk, wanted: list[str],
                          after: Entries) -> None:
    index = repo.index
    index.read(False)
    for path in wanted:
        if after[path] is None and path in index:
            index.remove(path)
    for path in wanted:
        entry = after[path]
        if entry is None:
            continue
        if disk.matches(path, entry) and disk.mode_is(path, entry.executable):
            # Hashed first: add() would store whatever the file holds (a person's edit, of any
            # size) as a blob. It stats the file; re-checked below in case it changed meanwhile.
            index.add(path)
            if index[path].id == entry.oid:
                continue
        index.add(pygit2.IndexEntry(path, entry.oid, FileMode(entry.mode)))
    _write_index(index, Path(repo.path))


def _write_index(index: pygit2.Index, git_dir: Path) -> None:
    deadline = time.monotonic() + index_file.LOCK_WAIT
    while True:
        try:
            index.write()
            return
        except pygit2.GitError:
            if not (git_dir / "index.lock").exists() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _safe(path: str) -> bool:
    """Paths from a tree were checked on the way in; one that is not a plain relative path is
    never touched on disk."""
    return paths.is_clean_relpath(path)


def _prune(disk: _Disk, path: str) -> None:
    """Remove the folders above `path` that hold nothing but expendable caches now (never the
    root): git tracks no folders, and a deleted worker must not live on as its __pycache__."""
    parent = path.rpartition("/")[0]
    while parent and disk.kind(parent) == "dir" and disk.clear_dir(parent, dry_run=False):
        parent = parent.rpartition("/")[0]


class _Disk:
    """lstat-based views of the working tree that never follow a symlink."""

    def __init__(self, root: Path, scratch: Path | None = None) -> None:
        self.root = str(root)
        # Where new files are written before they are linked into place, on a system without
        # unnamed files (storage/new_files.py): the git dir, which the watcher never sees. None,
        # or a target on another file system: next to the target.
        self.scratch = str(scratch) if scratch is not None else None
        self._gone: set[str] = set()  # removed in a dry run
        self._folders: set[str] = set()  # parents seen as real folders in this sync
        self._scratch_dev: int | None = None
        self._devs: dict[str, int] = {}  # folder -> its file system (st_dev)

    def full(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def forget(self, rel: str) -> None:
        self._gone.add(rel)

    def kind(self, rel: str) -> str:
        """file, dir, symlink, other or missing (also when a folder above is not a folder)."""
        if self._gone and (rel in self._gone or any(p in self._gone for p in _parents(rel))):
            return "missing"
        return lstat_kind(self.full(rel))

    def parents_free(self, rel: str) -> bool:
        """Every folder above `rel` is a real folder or missing (to be created). A folder seen
        once is not looked at again in the same sync (a sync touches many files per folder)."""
        for parent in _parents(rel):
            if parent in self._folders and not self._gone:
                continue
            kind = self.kind(parent)
            if kind == "dir":
                self._folders.add(parent)
            elif kind != "missing":
                return False
        return True

    def stat_if_holds(self, rel: str, entry: Entry) -> os.stat_result | None:
        """The file's stat data, taken before its content was found to be exactly `entry` (mode
        included); None otherwise."""
        try:
            st = os.lstat(self.full(rel))
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or bool(st.st_mode & 0o100) != entry.executable:
            return None
        return st if self.hash(rel) == entry.oid else None

    def hash(self, rel: str) -> pygit2.Oid | None:
        try:
            return pygit2.hashfile(self.full(rel))
        except (OSError, pygit2.GitError):
            return None

    def matches(self, rel: str, entry: Entry | None) -> bool:
        return entry is not None and self.kind(rel) == "file" and self.hash(rel) == entry.oid

    def holds(self, rel: str, entry: Entry | None) -> bool:
        """The disk holds exactly `entry` at `rel` (None: nothing is there)."""
        if entry is None:
            return self.kind(rel) in ("missing", "dir")
        return self.matches(rel, entry)

    def mode_is(self, rel: str, executable: bool) -> bool:
        try:
            return bool(os.lstat(self.full(rel)).st_mode & 0o100) == executable
        except OSError:
            return False

    def set_mode(self, rel: str, executable: bool) -> None:
        if not self.mode_is(rel, executable):
            with contextlib.suppress(OSError):
                os.chmod(self.full(rel), 0o755 if executable else 0o644)

    def unlink_if(self, rel: str, expected: Entry | None) -> bool:
        """Delete `rel` if it still holds `expected`; a save landing meanwhile stays."""
        if not self.matches(rel, expected):
            return False
        full = self.full(rel)
        aside = _aside_name(full)
        if aside is None:  # a name too long to carry along: compare, then delete
            os.unlink(full)
            return True
        try:
            os.rename(full, aside)  # what is there now, atomically ours to look at
        except FileNotFoundError:
            return True
        if pygit2.hashfile(aside) == expected.oid:  # type: ignore[union-attr]
            os.unlink(aside)
            return True
        _put_back(aside, full)
        return False

    def replace_if(self, rel: str, expected: Entry | None, data: bytes, executable: bool) -> bool:
        """Put `data` at `rel` if the disk still holds `expected` there (None: nothing).

        The new bytes are written aside first. The file in place is then renamed aside and
        compared: ours goes in only if it was what we expected, and only by a hard link, which
        never replaces a file a person saved in that instant; theirs is put back otherwise."""
        full = self.full(rel)
        folder = os.path.dirname(full)
        parent = rel.rpartition("/")[0]
        if parent and parent not in self._folders:  # not seen as a real folder just now
            os.makedirs(folder, exist_ok=True)
        new = NewBytes(data, executable, folder, lambda: self._temp_dir(folder))
        try:
            if expected is None:
                return new.link(full)
            if not self.matches(rel, expected):
                return False
            aside = _aside_name(full)
            if aside is None:  # a name too long to carry along: compare, then rename
                new.replace(full)
                return True
            try:
                os.rename(full, aside)
            except FileNotFoundError:
                return False  # they deleted it just now: their deletion stands
            if pygit2.hashfile(aside) != expected.oid:
                _put_back(aside, full)  # a save landed just now: it stays
                return False
            placed = new.link(full)  # False: they saved a new file in the gap
            os.unlink(aside)
            return placed
        finally:
            new.close()

    def _temp_dir(self, folder: str) -> str:
        """Where a new file for `folder` is written: the scratch folder when it is on the same
        file system (a hard link or rename cannot cross one), else `folder` itself."""
        if self.scratch is None:
            return folder
        if self._scratch_dev is None:
            self._scratch_dev = os.stat(self.scratch).st_dev
        dev = self._devs.get(folder)
        if dev is None:
            dev = self._devs[folder] = os.stat(folder).st_dev
        return self.scratch if dev == self._scratch_dev else folder

    def clear_dir(self, rel: str, dry_run: bool) -> bool:
        """Remove folder `rel` if nothing of a person's is left in it (only expendable caches
        and files already removed); True if it is gone."""
        full = self.full(rel)
        for dirpath, dirnames, filenames in os.walk(full):
            base = Path(dirpath).relative_to(self.root).as_posix()
            if set(Path(base).parts) & CACHE_DIRS:
                continue
            if any(f"{base}/{name}" not in self._gone for name in filenames):
                return False
            if any(os.path.islink(os.path.join(dirpath, d)) for d in dirnames):
                return False
        if dry_run:
            self.forget(rel)
            return True
        for dirpath, dirnames, filenames in os.walk(full, topdown=False):
            links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for name in filenames + links:
                os.unlink(os.path.join(dirpath, name))
            os.rmdir(dirpath)
        return True


def _put_back(aside: str, full: str) -> None:
    """Return a file taken aside to its place, unless a newer save took that place meanwhile."""
    with contextlib.suppress(FileExistsError):
        os.link(aside, full)
    os.unlink(aside)


def _aside_name(full: str) -> str | None:
    name = f"{ASIDE_PREFIX}{os.urandom(4).hex()}-{os.path.basename(full)}"
    return os.path.join(os.path.dirname(full), name) if len(name.encode()) <= 255 else None


def restore_aside(folder: Path) -> list[str]:
    """After a crash: put back the files a sync had taken aside in `folder` (where nothing took
    their place since) and drop the others. Returns the names restored."""
    restored = []
    for aside in folder.glob(ASIDE_PREFIX + "*"):
        target = folder / aside.name[len(ASIDE_PREFIX):].split("-", 1)[-1]
        if not aside.is_file() or aside.is_symlink():
            continue
        if os.path.lexists(target):
            aside.unlink()  # ours went in, or a newer save did: this one is superseded
        else:
            os.rename(aside, target)
            restored.append(target.name)
    return restored


def settled(read: Callable[[Path], T], path: Path) -> T | None:
    """`read(path)` for a working-tree file, None when there is none. The server takes a file it
    replaces aside for a moment (replace_if: its check cannot be made without), so a reader
    that misses a file looks again once, shortly after, before it counts as gone."""
    for last in (False, True):
        try:
            return read(path)
        except FileNotFoundError:
            if last:
                return None
            time.sleep(SETTLE_WAIT)
    return None


def lstat_kind(full: str) -> str:
    """What is at `full`, never following a symlink: file, dir, symlink, other or missing."""
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError:
        return "other"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]

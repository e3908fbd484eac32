"""WorkspaceRepo: one non-bare workspace repository over pygit2.

Commits (storage/changeset.py: what a commit changes and answers) are built from the branch
tip's trees (storage/trees.py; no index involved), the branch moves by compare-and-swap
(storage/refs.py), and only then are the touched paths written into the working tree and the
on-disk index (ENGINEERING-NOTES §2.2; storage/worktree.py never overwrites a person's edit). A
journal in .git names the commit the tree was synced to, so that step is redone after a crash or
a failure. Inside `grouped()` (the writer's batches) the commits on main share that journal and
one sync at the end, each still checked against what the disk holds. Every function here is
blocking: callers run it off the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pygit2
from pygit2.enums import ObjectType

from floom_git.errors import Conflict, NotFound, Unavailable
from floom_git.storage import journal, leftovers, refs, worktree
from floom_git.storage.changeset import (
    Change,
    Changeset,
    CommitResult,
    RefMoved,
    TreeRef,
    admitted,
    nest,
    signature,
)
from floom_git.storage.trees import TreeWriter

# Where the types of a commit live; kept importable from here, where every writer looks.
__all__ = ["JOURNAL", "MAIN", "RUNS", "Change", "Changeset", "CommitResult", "RefMoved",
           "TreeRef", "WorkspaceRepo", "signature"]

MAIN = "refs/heads/main"
RUNS = "refs/heads/floom/runs"
JOURNAL = journal.NAME
TEMP_PREFIX = worktree.TEMP_PREFIX  # temporary files, next to the file they replace
HEX = set("0123456789abcdef")

log = logging.getLogger("floom_git.storage")

# A folder of a few hundred files is a tree past libgit2's default cache limit per object (4 KiB):
# each commit into it then read and inflated that tree again for every path lookup (measured:
# a quarter of a commit's CPU). Trees up to 1 MiB stay in the cache (256 MiB in all, the default).
pygit2.settings.cache_object_limit(ObjectType.TREE, 1 << 20)


@dataclass
class _Group:
    """Commits on main whose working-tree sync waits for the end of their group."""

    active: bool = False
    base: str | None = None  # the commit the working tree and index still hold
    landed: list[str] = field(default_factory=list)  # commits made since, oldest first
    files: set[str] = field(default_factory=set)  # every file path those commits touched
    kept: set[str] = field(default_factory=set)  # after the sync: paths left as the disk had them


class WorkspaceRepo:
    """A workspace repository; `path` is its working tree."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.repo = pygit2.Repository(str(self.path))
        self._leftovers_cleared = False
        self._group = _Group()
        self._trees = TreeWriter(self.repo)

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: Path, files: Mapping[str, bytes], message: str, author: pygit2.Signature
    ) -> WorkspaceRepo:
        """Create a repository at `path` whose first commit on main holds `files`."""
        path.mkdir(parents=True, exist_ok=True)
        pygit2.init_repository(str(path), bare=False, initial_head="main")
        ws = cls(path)
        cfg = ws.repo.config
        cfg["receive.denyDeletes"] = True
        cfg["receive.denyNonFastForwards"] = True
        cfg["receive.fsckObjects"] = True
        cfg["core.commitGraph"] = True
        cfg["gc.writeCommitGraph"] = True
        cfg["uploadpack.allowFilter"] = True
        ws.commit(Changeset(dict(files), message), author, check_worktree=False)
        return ws

    # -- reads ----------------------------------------------------------------------------
    def tip(self, ref: str = MAIN) -> pygit2.Commit | None:
        try:
            return self.repo.lookup_reference(ref).peel(pygit2.Commit)
        except (KeyError, pygit2.GitError):
            return None

    def resolve(self, rev: str) -> pygit2.Commit:
        """A commit from a full sha or an unambiguous prefix (>= 4 hex digits); NotFound
        otherwise."""
        rev = (rev or "").lower()
        if not (4 <= len(rev) <= 40) or not set(rev) <= HEX:
            raise NotFound(f"Commit {rev[:40]} not found")
        try:
            obj = self.repo.revparse_single(rev)
            return obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
            raise NotFound(f"Commit {rev} not found") from exc

    def entry(self, commit: pygit2.Commit | None, path: str) -> pygit2.Object | None:
        if commit is None:
            return None
        try:
            return commit.tree[path] if path else commit.tree
        except KeyError:
            return None

    def read_blob(self, commit: pygit2.Commit | None, path: str) -> bytes | None:
        obj = self.entry(commit, path)
        return obj.data if isinstance(obj, pygit2.Blob) else None

    def walk_tree(self, tree: pygit2.Tree, prefix: str = "") -> Iterator[tuple[str, pygit2.Blob]]:
        """Yield (path, blob) for every file under `tree`, paths joined to `prefix`."""
        for item in tree:
            path = f"{prefix}/{item.name}" if prefix else str(item.name)
            if isinstance(item, pygit2.Tree):
                yield from self.walk_tree(item, path)
            elif isinstance(item, pygit2.Blob):
                yield path, item

    def files_at(self, commit: pygit2.Commit | None, prefix: str) -> dict[str, pygit2.Blob]:
        """Every file under folder `prefix` at `commit`, keyed by path relative to `prefix`."""
        obj = self.entry(commit, prefix)
        return dict(self.walk_tree(obj)) if isinstance(obj, pygit2.Tree) else {}

    def touched(self, commit: pygit2.Commit, path: str) -> bool:
        """True when `commit` changed `path` compared with one of its parents (or created it)."""
        mine = self.entry(commit, path)
        if not commit.parents:
            return mine is not None
        return any(
            (self.entry(parent, path) or _MISSING).id != (mine or _MISSING).id
            for parent in commit.parents
        )

    def is_ancestor(self, commit: pygit2.Commit, ref: str = MAIN) -> bool:
        tip = self.tip(ref)
        if tip is None:
            return False
        return tip.id == commit.id or self.repo.descendant_of(tip.id, commit.id)

    # -- writes ---------------------------------------------------------------------------
    def commit(
        self,
        changeset: Changeset,
        author: pygit2.Signature,
        *,
        ref: str = MAIN,
        check_worktree: bool = True,
    ) -> CommitResult:
        """Commit `changeset` on `ref`; on main also sync the working tree and index (inside
        `grouped()`: at the end of the group, and the result's `unsynced` is filled in then).

        Raises Conflict when a touched file has uncommitted on-disk edits, RefMoved when the
        branch moved under us, and OSError (or pygit2.GitError) when the commit could not be
        written, e.g. on a full disk. A changeset that changes nothing returns
        CommitResult(sha=None).
        """
        group = self._group
        if group.landed and changeset.from_disk:
            self._sync_group()  # a sync of on-disk edits compares the disk with main as it is
        parent = self.tip(ref)
        base_tree = parent.tree if parent else None
        changes = admitted(changeset.changes)
        new_tree_id = self._trees.build(base_tree.id if base_tree else None, nest(changes))
        if new_tree_id is None:
            new_tree_id = self.repo.TreeBuilder().write()
        if parent is not None and new_tree_id == parent.tree_id:
            return CommitResult(None, result=changeset.result)
        new_tree = cast(pygit2.Tree, self.repo[new_tree_id])  # written as a tree just now
        worktree_ref = ref == MAIN and not self.repo.is_bare
        files = self._expand(base_tree, new_tree, changes)
        deferred = worktree_ref and group.active and not changeset.from_disk
        if worktree_ref and check_worktree:
            # An API write to a file a person is editing is refused (409) rather than written
            # over; an edit saved after this check is still never overwritten (worktree.sync).
            # What the disk should hold is what was synced last: the group's base.
            synced, checked = base_tree, files
            if group.landed:
                synced = self.repo[group.base].peel(pygit2.Tree) if group.base else None
                checked = sorted(set(files) | set(self._expand(synced, new_tree, changes)))
            self._check_clean(synced, new_tree, checked, from_disk=changeset.from_disk)
        if worktree_ref and not group.landed:
            self._begin_sync(str(parent.id) if parent else None, [] if deferred else files,
                             index_only=changeset.from_disk)
        old = str(parent.id) if parent else None
        try:
            oid = self.repo.create_commit(
                None, author, author, changeset.message, new_tree_id, [parent.id] if parent else []
            )
            if oid not in self.repo:  # libgit2 can answer success for an object it failed to write
                raise OSError(errno.EIO, f"the commit on {ref} could not be written (is the disk "
                                         "full?); nothing was changed")
            refs.move(self.repo, ref, old, str(oid), author,
                      refs.commit_message(changeset.message, initial=parent is None))
        except (pygit2.GitError, OSError, RefMoved) as exc:
            if worktree_ref and not group.landed:
                self._clear_journal()
            if isinstance(exc, RefMoved):
                raise
            if refs.target(self.repo, ref) != old:
                raise RefMoved(f"branch {ref} moved while committing; retry ({exc})") from exc
            raise
        unsynced: list[str] = []
        if deferred:
            if not group.landed:
                group.base = str(parent.id) if parent else None
            group.landed.append(str(oid))
            group.files.update(files)
        elif worktree_ref:
            unsynced = self._sync_landed(base_tree, new_tree, files, str(oid),
                                         write=not changeset.from_disk)
        return CommitResult(str(oid), tuple(changes), changeset.result, tuple(files),
                            tuple(unsynced), str(parent.id) if parent else None,
                            changeset.from_disk)

    @contextlib.contextmanager
    def grouped(self) -> Iterator[_Group]:
        """Commits on main made inside share one journal and one working-tree and index sync,
        made on leaving (also when leaving by an exception). A commit still refuses a file a
        person changed since the last sync. Afterwards the group's `kept` holds the paths the
        disk kept as they were (a person's edit, or all of them when the sync failed)."""
        group = self._group = _Group(active=True)
        try:
            yield group
        finally:
            self._sync_group()
            group.active = False

    def _sync_group(self) -> None:
        group = self._group
        if not group.landed:
            return
        last, base, files = group.landed[-1], group.base, sorted(group.files)
        group.landed, group.base, group.files = [], None, set()
        old_tree = self.repo[base].peel(pygit2.Tree) if base else None
        new_tree = self.repo[last].peel(pygit2.Tree)
        # Each commit's files cover what it changed, so together they cover base..last.
        group.kept |= set(self._sync_landed(old_tree, new_tree, files, last, write=True))

    def _expand(
        self, old: pygit2.Tree | None, new: pygit2.Tree, changes: Mapping[str, Change]
    ) -> list[str]:
        """Concrete file paths whose content may differ between `old` and `new` for `changes`."""
        out: set[str] = set()
        for path in changes:
            parts = path.split("/")
            for i in range(1, len(parts)):  # a file where a folder now is (or was)
                prefix = "/".join(parts[:i])
                if worktree.file_entry(old, prefix) or worktree.file_entry(new, prefix):
                    out.add(prefix)
            for tree in (old, new):
                if tree is None:
                    continue
                try:
                    obj = tree[path]
                except KeyError:
                    continue
                if obj.type == ObjectType.TREE:
                    folder = cast(pygit2.Tree, self.repo[obj.id])
                    out.update(p for p, _ in self.walk_tree(folder, path))
                else:
                    out.add(path)
            if isinstance(changes[path], bytes):
                out.add(path)
        return sorted(out)

    def _check_clean(
        self,
        old: pygit2.Tree | None,
        new: pygit2.Tree,
        files: list[str],
        *,
        from_disk: bool = False,
    ) -> None:
        """Conflict naming the files whose disk state this commit would have to leave alone: an
        edit not synced yet, or (from_disk) a file saved again since it was read."""
        plan = worktree.sync(self.repo, self.path, old, new, files, write=not from_disk,
                             dry_run=True)
        if plan.kept:
            dirty = plan.kept
            shown = ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else "")
            raise Conflict(
                f"uncommitted on-disk edits in {shown}; they are synced after a short quiet "
                "period (or POST /workers/reload), then retry"
            )

    def _sync_landed(self, old: pygit2.Tree | None, new: pygit2.Tree, files: list[str], sha: str,
                     *, write: bool) -> list[str]:
        """After the ref moved: bring disk and index along. A failure here does not undo the
        commit (it landed): it is logged and the journal makes the next write redo it."""
        try:
            outcome = worktree.sync(self.repo, self.path, old, new, files, write=write)
        except Exception:
            log.exception("%s: commit %s landed but the working tree could not be updated; "
                          "the next write or start-up repairs it", self.path, sha[:7])
            return list(files)
        self._clear_journal()
        if write and outcome.kept:
            log.info("%s: commit %s left on-disk edits of %s in place; the next sync commits "
                     "them on top", self.path, sha[:7], ", ".join(outcome.kept[:10]))
        return outcome.kept

    def _begin_sync(self, old_main: str | None, files: list[str], *, index_only: bool) -> None:
        """Journal that main moves from `old_main` (and the working tree must follow) before it
        does. A journal left by an earlier failure is repaired first, so it is never lost."""
        git_dir = Path(self.repo.path)
        if journal.pending(git_dir):
            self.recover()
        journal.write(git_dir, {"from": old_main, "files": files, "index_only": index_only})

    def _clear_journal(self) -> None:
        journal.clear(Path(self.repo.path))

    def recover(self) -> list[str]:
        """After a crash: finish a working-tree sync that a commit started. Returns the files.

        The first call on a newly opened repository (start-up, before this process writes it)
        also removes what a killed process left in .git (storage/leftovers.py).
        """
        if not self._leftovers_cleared:
            self._leftovers_cleared = True
            leftovers.clear(Path(self.repo.path), TEMP_PREFIX)
        data = journal.read(Path(self.repo.path))
        if data is None:
            return []
        try:
            files = [f for f in data.get("files", []) if isinstance(f, str)]
        except TypeError:
            data, files = {}, []
        head = self._main_sha()
        if "from" in data:
            old = data["from"] if isinstance(data["from"], str) else None
        else:  # a journal written before it named its commit: the commit was main's last
            tip = self.tip(MAIN)
            old = str(tip.parents[0].id) if tip is not None and tip.parents else None
        try:
            files = sorted(set(files) | set(self.changed_files(old, head)))
            for folder in sorted({(self.path / f).parent for f in files}):
                if folder.is_dir() and not folder.is_symlink():
                    worktree.restore_aside(folder)  # files a killed sync had taken aside
            old_tree = self.repo[old].peel(pygit2.Tree) if old else None
            new_tree = self.repo[head].peel(pygit2.Tree) if head else None
            worktree.sync(self.repo, self.path, old_tree, new_tree, files,
                          write=not data.get("index_only", False))
        except Exception as exc:
            raise Unavailable(
                f"the working tree of {self.path.name} could not be brought up to date with "
                f"main ({type(exc).__name__}: {exc}); writes wait until it can"
            ) from exc
        self._remove_temp_files(files)
        self._clear_journal()
        self._group.landed, self._group.base = [], None  # synced just now, with the rest
        self._group.files = set()
        return files

    def _remove_temp_files(self, files: list[str]) -> None:
        """Delete the untracked temporary files a sync of `files` may have left when killed."""
        head = self.tip(MAIN)
        for folder in sorted({(self.path / f).parent for f in files}):
            if folder.is_symlink() or not folder.is_dir():
                continue
            for tmp in folder.glob(TEMP_PREFIX + "*"):
                rel = tmp.relative_to(self.path).as_posix()
                if tmp.is_file() and not tmp.is_symlink() and self.entry(head, rel) is None:
                    tmp.unlink(missing_ok=True)
            _prune_dirs(folder, self.path)

    # -- refs moved by another program (receive-pack) ----------------------------------------
    def begin_ref_move(self, old_main: str | None) -> None:
        """Journal that main may move from `old_main` outside this class, so that recover()
        brings the working tree up to date even if the server dies before finish_ref_move."""
        self._begin_sync(old_main, [], index_only=False)

    def finish_ref_move(self, old_main: str | None) -> list[str]:
        """After main moved from `old_main` (or not): sync working tree and index for the files
        that changed (never over a person's edit), clear the journal, return those files.
        Raises what the sync raised; the journal then stays for the next write to redo."""
        new_main = self._main_sha()
        files = self.changed_files(old_main, new_main) if new_main != old_main else []
        if files:
            old_tree = self.repo[old_main].peel(pygit2.Tree) if old_main else None
            new_tree = self.repo[new_main].peel(pygit2.Tree) if new_main else None
            kept = worktree.sync(self.repo, self.path, old_tree, new_tree, files).kept
            if kept:
                log.info("%s: push left on-disk edits of %s in place; the next sync commits "
                         "them on top", self.path, ", ".join(kept[:10]))
        self._clear_journal()
        return files

    def changed_files(self, old: str | None, new: str | None) -> list[str]:
        """File paths that differ (content, mode, added or removed) between two commits;
        None stands for the empty tree."""
        if old == new:
            return []
        old_tree = self.repo[old].peel(pygit2.Tree) if old else None
        new_tree = self.repo[new].peel(pygit2.Tree) if new else None
        if new_tree is None:
            if old_tree is None:
                return []
            diff = old_tree.diff_to_tree()
        elif old_tree is None:
            diff = new_tree.diff_to_tree(swap=True)
        else:
            diff = old_tree.diff_to_tree(new_tree)
        out = set()
        for delta in diff.deltas:
            out.add(delta.old_file.path)
            out.add(delta.new_file.path)
        return sorted(out)

    def _main_sha(self) -> str | None:
        tip = self.tip(MAIN)
        return str(tip.id) if tip is not None else None

class _Missing:
    id = None


_MISSING = _Missing()


def _prune_dirs(folder: Path, root: Path) -> None:
    """Remove now-empty folders from `folder` up to (not including) `root`."""
    root = root.resolve()
    folder = folder.resolve() if folder.exists() else folder
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

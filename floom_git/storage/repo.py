"""WorkspaceRepo: one non-bare workspace repository over pygit2.

Commits (storage/changeset.py: what a commit changes and answers) are built from the branch
tip's trees (storage/trees.py; no index involved), their objects are written as one pack
(storage/packs.py), the branch moves by compare-and-swap (storage/refs.py), and only then are
the touched paths written into the working tree and the on-disk index (ENGINEERING-NOTES §2.2;
storage/worktree.py never overwrites a person's edit). A journal in .git names the commit the
tree was synced to, so that step is redone after a crash or a failure. Inside `grouped()` (the
writer's batches) each commit is made on the one before and the group lands at the end: each
branch moved once, one journal and one sync on main, each commit still checked against what
the disk holds. Every function here is blocking: callers run it off the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pygit2
from pygit2.enums import ObjectType

from floom_git.errors import Conflict, NotFound, Unavailable
from floom_git.storage import journal, leftovers, packs, refs, tree_diff, worktree
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
from floom_git.storage.handle import Handle
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
class _Move:
    """Where a branch pointed before a group's first commit on it, and the group's commits on
    it, oldest first: (sha, author, reflog message)."""

    old: str | None
    steps: list[tuple[str, pygit2.Signature, str]] = field(default_factory=list)


@dataclass
class _Group:
    """Commits that land at the end of their group, and main's working-tree sync."""

    active: bool = False
    thread: int | None = None  # the thread committing: it sees the group's commits as tips
    moves: dict[str, _Move] = field(default_factory=dict)  # branch moves not made yet
    failed: dict[str, BaseException] = field(default_factory=dict)  # branches that did not land
    lost: set[str] = field(default_factory=set)  # their commits
    base: str | None = None  # the commit the working tree and index still hold
    landed: list[str] = field(default_factory=list)  # commits on main since, oldest first
    files: set[str] = field(default_factory=set)  # every file path those commits touched
    kept: set[str] = field(default_factory=set)  # after the sync: paths left as the disk had them


class WorkspaceRepo:
    """A workspace repository; `path` is its working tree."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.repo: pygit2.Repository = Handle(str(self.path))
        self._leftovers_cleared = False
        self._group = _Group()
        self._objects = packs.Objects()
        self._trees = TreeWriter(self.repo, self._objects)

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
        """The commit `ref` points at; for the thread committing a group, the group's last
        commit on it (not landed yet; every other reader sees only what landed)."""
        group = self._group
        if group.moves and group.thread == threading.get_ident() and ref in group.moves:
            sha = group.moves[ref].steps[-1][0]
            return cast(pygit2.Commit, self.repo[sha])
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
        return tree_diff.walk(tree, prefix)

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
        """Commit `changeset` on `ref`; on main also sync the working tree and index.

        Inside `grouped()` (the writer's batches) the commit is made on the one before it but
        lands with its group: each branch moved once, and one sync, on leaving; the result's
        `unsynced` is filled in then, and a branch that could not be moved is named in the
        group's `failed`. Raises Conflict when a touched file has uncommitted on-disk edits,
        RefMoved when the branch moved under us, and OSError (or pygit2.GitError) when the
        commit could not be written, e.g. on a full disk. A changeset that changes nothing
        returns CommitResult(sha=None).
        """
        group = self._group
        now = not group.active or changeset.from_disk
        if group.active and changeset.from_disk:
            self._sync_group()  # a sync of on-disk edits compares the disk with main as it is
        parent = self.tip(ref)
        base_tree = parent.tree if parent else None
        changes = admitted(changeset.changes)
        new_tree_id = self._trees.build(base_tree.id if base_tree else None, nest(changes))
        if new_tree_id is None:
            new_tree_id = pygit2.Oid(raw=self._objects.add(ObjectType.TREE, b""))
        if parent is not None and new_tree_id == parent.tree_id:
            return CommitResult(None, result=changeset.result)
        parents = [parent.id] if parent else []
        oid = pygit2.Oid(raw=self._objects.add(ObjectType.COMMIT, packs.commit_data(
            new_tree_id, parents, author, author, changeset.message)))
        # One pack for the commit, its trees and blobs: two new files, not one per object. A
        # commit refused below (a conflict) stays a dangling object, as its trees did before.
        self._write_objects()
        if oid not in self.repo:  # what libgit2 cannot read must never be named by a branch
            raise OSError(errno.EIO, f"the commit on {ref} could not be read back after it was "
                                     "written; nothing was changed")
        new_tree = cast(pygit2.Tree, self.repo[new_tree_id])
        worktree_ref = ref == MAIN and not self.repo.is_bare
        files = tree_diff.expand(self.repo, base_tree, new_tree, changes)
        if worktree_ref and check_worktree:
            # An API write to a file a person is editing is refused (409) rather than written
            # over; an edit saved after this check is still never overwritten (worktree.sync).
            # What the disk should hold is what was synced last: the group's base.
            synced, checked = base_tree, files
            if group.landed:
                synced = self.repo[group.base].peel(pygit2.Tree) if group.base else None
                since = tree_diff.expand(self.repo, synced, new_tree, changes)
                checked = sorted(set(files) | set(since))
            self._check_clean(synced, new_tree, checked, from_disk=changeset.from_disk)
        old = str(parent.id) if parent else None
        message = refs.commit_message(changeset.message, initial=parent is None)
        if worktree_ref and not group.landed:
            self._begin_sync(old, [] if not now else files, index_only=changeset.from_disk)
        if not now:  # the group lands it (_land)
            move = group.moves.setdefault(ref, _Move(old))
            move.steps.append((str(oid), author, message))
            if worktree_ref:
                if not group.landed:
                    group.base = old
                group.landed.append(str(oid))
                group.files.update(files)
            return CommitResult(str(oid), tuple(changes), changeset.result, tuple(files), (),
                                old, changeset.from_disk)
        try:
            refs.move(self.repo, ref, old, str(oid), author, message)
        except (pygit2.GitError, OSError, RefMoved) as exc:
            if worktree_ref:
                self._clear_journal()
            if isinstance(exc, RefMoved):
                raise
            if refs.target(self.repo, ref) != old:
                raise RefMoved(f"branch {ref} moved while committing; retry ({exc})") from exc
            raise
        unsynced: list[str] = []
        if worktree_ref:
            unsynced = self._sync_landed(base_tree, new_tree, files, str(oid),
                                         write=not changeset.from_disk)
        self._roll_up_packs()
        return CommitResult(str(oid), tuple(changes), changeset.result, tuple(files),
                            tuple(unsynced), old, changeset.from_disk)

    def _write_objects(self) -> None:
        """Write the objects kept so far as one pack (storage/packs.py)."""
        try:
            self._objects.write(Path(self.repo.path))
        finally:
            self._objects.clear()

    def _roll_up_packs(self) -> None:
        """Keep the number of packs small (storage/packs.py); the commits have landed, so a
        failure here is only logged (the packs stay as they were)."""
        try:
            rolled = packs.roll_up(Path(self.repo.path))
        except OSError:
            log.exception("%s: rolling up small packs failed; they stay as they are", self.path)
            return
        if rolled:
            self.reopen()

    def reopen(self) -> None:
        """A new libgit2 handle, after packs were removed (rolled up here, or repacked by git):
        libgit2 keeps every pack it has listed, removed or not, and would go on looking into
        them; a new handle lists only what is there now. Under the writer lock."""
        self.repo = Handle(str(self.path))
        self._trees.repo = self.repo

    @contextlib.contextmanager
    def grouped(self) -> Iterator[_Group]:
        """Commits made inside land together on leaving (also when leaving by an exception):
        each branch moved once to its last commit (a reflog line per commit), and on main one
        journal and one working-tree and index sync. A commit still refuses a file a person
        changed since the last sync. Afterwards the group's `kept` holds the paths the disk kept
        as they were (a person's edit, or all of them when the sync failed), and `failed` the
        branches whose commits did not land, with why."""
        group = self._group = _Group(active=True, thread=threading.get_ident())
        try:
            yield group
        finally:
            try:
                self._sync_group()
            finally:
                self._objects.clear()  # what is left belongs to refused commits
                group.active = False
                group.thread = None

    def _sync_group(self) -> None:
        """Land the group's commits, then bring main's working tree and index along."""
        self._land()
        group = self._group
        if not group.landed:
            return
        last, base, files = group.landed[-1], group.base, sorted(group.files)
        group.landed, group.base, group.files = [], None, set()
        old_tree = self.repo[base].peel(pygit2.Tree) if base else None
        new_tree = self.repo[last].peel(pygit2.Tree)
        # Each commit's files cover what it changed, so together they cover base..last.
        group.kept |= set(self._sync_landed(old_tree, new_tree, files, last, write=True))

    def _land(self) -> None:
        """Move each branch of the group by compare-and-swap to its last commit (the objects
        are in packs already). A branch that cannot be moved is named in `failed`: its commits
        did not land (nor does main's sync journal stay)."""
        group = self._group
        moves, group.moves = group.moves, {}
        if not moves:
            return
        failed: dict[str, BaseException] = {}
        for ref, move in moves.items():
            try:
                refs.move_chain(self.repo, ref, move.old, move.steps)
            except (RefMoved, OSError) as why:
                if refs.target(self.repo, ref) == move.steps[-1][0]:  # moved; its reflog failed
                    log.warning("%s: %s moved, but its reflog was not written: %s", self.path,
                                ref, why)
                    continue
                failed[ref] = why
        for ref in failed:
            group.failed[ref] = failed[ref]
            group.lost.update(sha for sha, _, _ in moves[ref].steps)
        if MAIN in failed and group.landed:
            group.landed, group.base, group.files = [], None, set()
            self._clear_journal()
        self._roll_up_packs()

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
        if self._group.moves:  # a group's commits land before what they change is synced
            self._land()
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
        main = self.tip(MAIN)
        leftovers.remove_temp_files(self.path, files, TEMP_PREFIX,
                                    lambda rel: self.entry(main, rel) is not None)
        self._clear_journal()
        self._group.landed, self._group.base = [], None  # synced just now, with the rest
        self._group.files = set()
        return files

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
        return tree_diff.changed_files(self.repo, old, new)

    def _main_sha(self) -> str | None:
        tip = self.tip(MAIN)
        return str(tip.id) if tip is not None else None


class _Missing:
    id = None


_MISSING = _Missing()

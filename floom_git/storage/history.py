"""History shared by every resource: the log of a path (git log over a commit-graph with
changed-path Bloom filters, ENGINEERING-NOTES §2.3), version membership, what a path held at a
version, and restoring it."""

from __future__ import annotations

import os
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pygit2

from floom_git.errors import Conflict, NotFound
from floom_git.paths import is_clean_relpath
from floom_git.storage import packs
from floom_git.storage.git_process import git_env
from floom_git.storage.handle import Handle
from floom_git.storage.repo import MAIN, Changeset, TreeRef, WorkspaceRepo

SEP = "\x1f"
REC = "\x1e"
MAX_LIMIT = 500


@dataclass(frozen=True)
class LogEntry:
    sha: str
    author: str
    email: str
    timestamp: str
    message: str


def log(
    repo_path: Path,
    paths: list[str],
    *,
    limit: int = 100,
    skip: int = 0,
    ref: str = MAIN,
    git: str = "git",
) -> list[LogEntry]:
    """Commits on `ref` touching any of `paths` (all commits if empty), newest first."""
    limit = max(1, min(limit, MAX_LIMIT))
    cmd = [
        git, "-C", str(repo_path), "log", f"--max-count={limit}", f"--skip={max(0, skip)}",
        f"--format={REC}%H{SEP}%an{SEP}%ae{SEP}%aI{SEP}%s", ref, "--",
        *paths,
    ]
    proc = subprocess.run(cmd, capture_output=True, env=git_env(git), check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        if "unknown revision" in err or "bad revision" in err or "does not have any commits" in err:
            return []
        raise RuntimeError(f"git log failed: {err.strip()}")
    out = []
    for rec in proc.stdout.decode("utf-8", errors="replace").split(REC):
        rec = rec.strip("\n")
        if not rec:
            continue
        sha, name, email, ts, msg = rec.split(SEP, 4)
        out.append(LogEntry(sha, name, email, ts, msg))
    return out


KEPT = 100  # log entries kept per set of paths: the first two pages at the default limit (50)
KEPT_LOGS = 64  # sets of paths kept per workspace, the least recently read let go first
FORWARD = 256  # commits main may have moved since a kept log was read, for it to be extended


@dataclass(frozen=True)
class _Kept:
    tip: str  # the commit of main the log was read at
    entries: list[LogEntry]  # its first KEPT entries, newest first (all of them, if fewer)


class PathLogs:
    """The log of paths on main (a worker's versions, the changelog) for one workspace, kept as
    last read and brought up to main's tip by reading only the commits since: the log of a path
    at a given commit never changes, and when main moved forward through single-parent commits
    the log at the new tip is the log of those commits followed by the old one. Anything else
    (merges, a branch moved elsewhere, more than FORWARD commits, a page past KEPT entries) reads
    the whole walk again: at 100,000 commits, 20-70 ms for a path changed every 100 commits, and
    a few hundred for one with a single version at the start (git walks all of it)."""

    def __init__(self, repo: WorkspaceRepo, git: str = "git") -> None:
        self._repo = repo
        self._git = git
        self._kept: OrderedDict[tuple[str, ...], _Kept] = OrderedDict()
        self._lock = threading.Lock()  # reads run in threads of their own

    def log(self, paths: list[str], *, limit: int = 100, skip: int = 0) -> list[LogEntry]:
        """What log(path, paths, limit=, skip=) answers at main's tip (blocking)."""
        limit, skip = max(1, min(limit, MAX_LIMIT)), max(0, skip)
        tip_commit = self._repo.tip(MAIN)
        if tip_commit is None:
            return []
        tip = str(tip_commit.id)
        if skip + limit > KEPT:
            return log(self._repo.path, paths, limit=limit, skip=skip, ref=tip, git=self._git)
        key = tuple(paths)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept.tip != tip:
            kept = self._forward(kept, tip, paths)
        if kept is None:
            entries = log(self._repo.path, paths, limit=KEPT, ref=tip, git=self._git)
            kept = _Kept(tip, entries)
        with self._lock:
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT_LOGS:
                self._kept.popitem(last=False)
        return kept.entries[skip:skip + limit]

    def _forward(self, kept: _Kept, tip: str, paths: list[str]) -> _Kept | None:
        """`kept` at `tip`, when main reached `tip` from `kept.tip` through at most FORWARD
        single-parent commits; None otherwise. When none of them changed `paths` (compared
        in the trees here), no git process is started."""
        odb, entry = self._repo.repo, self._repo.entry
        commit = cast(pygit2.Commit, odb[tip])
        changed = not paths or not all(map(_literal, paths))  # git matches those itself
        for _ in range(FORWARD):
            if len(commit.parent_ids) != 1:
                return None
            parent = cast(pygit2.Commit, odb[commit.parent_ids[0]])
            changed = changed or any(  # a file or a folder: what `git log -- paths` shows
                _at(entry(parent, p)) != _at(entry(commit, p)) for p in paths)
            if str(parent.id) == kept.tip:
                break
            commit = parent
        else:
            return None
        if not changed:
            return _Kept(tip, kept.entries)
        since = log(self._repo.path, paths, limit=MAX_LIMIT, ref=f"{kept.tip}..{tip}",
                    git=self._git)
        return _Kept(tip, (since + kept.entries)[:KEPT])


def _literal(path: str) -> bool:
    """A path git's pathspec matching reads as itself and what is under it (no magic, no glob
    characters), which a tree lookup answers alike."""
    return is_clean_relpath(path) and not set(path) & set("*?[:")


def _at(entry: pygit2.Object | None) -> tuple[str, int] | None:
    """What git compares of a tree entry: its object and mode."""
    return None if entry is None else (str(entry.id), entry.filemode)


def upkeep(repo_path: Path, git: str = "git") -> None:
    """Pack loose objects when git thinks it is time, or roll the server's big undeltified packs
    into one with deltas; then refresh the commit-graph. Run under the workspace writer lock: gc
    and repack take ref and pack locks."""
    if gc_due(repo_path):
        subprocess.run([git, "-C", str(repo_path), "-c", "gc.autoDetach=false", "-c",
                        "gc.writeCommitGraph=false", "gc", "--auto",
                        "--quiet"], capture_output=True, env=git_env(git), check=False)
    elif packs.big(repo_path / ".git") >= 2:
        # The server's packs hold no deltas (storage/packs.py) and stop being rolled at
        # ROLL_MAX: git rolls them (and what else breaks a geometric progression of pack sizes)
        # into one pack with deltas, as gc would loose objects.
        subprocess.run([git, "-C", str(repo_path), "repack", "-d", "-l", "--geometric=2",
                        "--quiet"], capture_output=True, env=git_env(git), check=False)
    write_commit_graph(repo_path, git)


def gc_due(repo_path: Path) -> bool:
    """What `git gc --auto` looks at before doing anything, read without starting git (a git
    process every 200 commits that mostly finds nothing to do): more loose objects in
    objects/17 than gc.auto / 256 (git counts that one folder), or more packs than
    gc.autoPackLimit. True when the settings cannot be read: git decides then."""
    git_dir = repo_path / ".git"
    try:
        config = Handle(str(repo_path)).config
        limit = config.get_int("gc.auto") if "gc.auto" in config else 6700
        pack_limit = (config.get_int("gc.autoPackLimit") if "gc.autoPackLimit" in config
                      else 50)
    except (pygit2.GitError, ValueError, KeyError):
        return True
    if limit <= 0:
        return False  # gc --auto is switched off
    try:
        loose = sum(1 for name in os.listdir(git_dir / "objects" / "17") if len(name) == 38)
    except FileNotFoundError:
        loose = 0
    if loose > -(-limit // 256):
        return True
    if pack_limit <= 0:
        return False
    return len(packs.unkept(git_dir)) > pack_limit


def write_commit_graph(repo_path: Path, git: str = "git") -> None:
    """Refresh the commit-graph with changed-path Bloom filters (keeps path history fast)."""
    subprocess.run(
        [git, "-C", str(repo_path), "commit-graph", "write", "--reachable", "--changed-paths",
         "--split", "--size-multiple=4"],
        capture_output=True, env=git_env(git), check=False,
    )


def version_of(repo: WorkspaceRepo, sha: str, asset_path: str) -> pygit2.Commit:
    """The commit `sha` if it is on main and changed `asset_path`; NotFound otherwise."""
    commit = repo.resolve(sha)
    if not repo.is_ancestor(commit) or not repo.touched(commit, asset_path):
        raise NotFound(f"Commit {sha} not found in the history of {asset_path}")
    return commit


def contents(
    repo: WorkspaceRepo, commit: pygit2.Commit, asset_path: str
) -> dict[str, bytes] | None:
    """What `asset_path` held at `commit`: a folder's files by relative path, a file under its
    own name; None when it did not exist there."""
    obj = repo.entry(commit, asset_path)
    if isinstance(obj, pygit2.Tree):
        return {p: b.data for p, b in repo.walk_tree(obj)}
    if isinstance(obj, pygit2.Blob):
        return {asset_path.rpartition("/")[2]: obj.data}
    return None


def restore(repo: WorkspaceRepo, commit: pygit2.Commit, asset_path: str, message: str) -> Changeset:
    """A changeset that puts `asset_path` back exactly as it was at `commit` (a version_of it;
    later files removed). Conflict when it did not exist there."""
    obj = repo.entry(commit, asset_path)
    if obj is None:
        raise Conflict(f"{asset_path} did not exist at {str(commit.id)[:7]}; nothing to restore")
    if isinstance(obj, pygit2.Tree):
        return Changeset({asset_path: TreeRef(obj.id)}, message, result=commit)
    assert isinstance(obj, pygit2.Blob)  # a path names a tree or a blob
    return Changeset({asset_path: obj.data}, message, result=commit)


def changed_by(repo: WorkspaceRepo, sha: str) -> list[str]:
    """The files commit `sha` changed against its first parent (all of them for a root
    commit), in path order."""
    commit = repo.repo[sha].peel(pygit2.Commit)
    parent = str(commit.parents[0].id) if commit.parents else None
    return repo.changed_files(parent, str(commit.id))

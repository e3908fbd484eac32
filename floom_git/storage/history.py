"""History shared by every resource: the log of a path (git log over a commit-graph with
changed-path Bloom filters, ENGINEERING-NOTES §2.3), version membership, what a path held at a
version, and restoring it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pygit2

from floom_git.errors import Conflict, NotFound
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

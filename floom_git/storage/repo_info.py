"""What services read of a workspace repository besides its commits: where its git folder is,
what its branches and tags point at, which objects it has, what its .gitignore rules leave
out, and which working-tree files differ from HEAD."""

from __future__ import annotations

import contextlib

import pygit2

from floom_git.storage.repo import WorkspaceRepo


def git_dir(repo: WorkspaceRepo) -> str:
    """The repository's `.git/` folder (with its trailing slash, as git reports it)."""
    return str(repo.repo.path)


def heads_and_tags(repo: WorkspaceRepo) -> dict[str, str]:
    """{ref name: commit sha} of every branch and tag."""
    refs = repo.repo.references
    out = {}
    for name in refs:
        if name.startswith(("refs/heads/", "refs/tags/")):
            with contextlib.suppress(KeyError, ValueError):
                out[name] = str(refs[name].resolve().target)
    return out


def has_object(repo: WorkspaceRepo, sha: str) -> bool:
    """The repository holds the object `sha` (a full sha)."""
    return sha in repo.repo


def is_ignored(repo: WorkspaceRepo, rel: str) -> bool:
    """The working tree's .gitignore rules ignore `rel`."""
    return bool(repo.repo.path_is_ignored(rel))


def worktree_changes(repo: WorkspaceRepo, prefix: str = "") -> list[str]:
    """Paths under `prefix` whose working-tree state differs from HEAD (ignored files
    skipped)."""
    flags = pygit2.enums.FileStatus
    out = []
    for path, status in repo.repo.status(untracked_files="all").items():
        if prefix and not (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            continue
        if status & flags.IGNORED or status == flags.CURRENT:
            continue
        out.append(path)
    return sorted(out)

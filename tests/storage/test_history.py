"""history.PathLogs against git log itself: whatever main does (commits, merges, moving back, a
long way forward), the kept logs answer what a fresh `git log` answers; after commits on top,
only those commits are read, and git only when one of them changed the paths."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from floom_git.storage import history
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("tester", "tester@example.com")
PATHS = (["a.txt"], ["b.txt"], ["c.txt"], ["a.txt", "dir"], ["dir"], ["dir/x.txt"], [],
         ["*.txt"])
PAGES = ((1, 0), (50, 0), (50, 50), (10, 90), (100, 0), (60, 60), (500, 0), (5, 400))


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    return WorkspaceRepo.create(tmp_path / "ws", {"a.txt": b"0\n"}, "init", SIG)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The revisions every git log was run with (the real function runs)."""
    seen: list[str] = []
    real = history.log

    def spied(*args, **kwargs):
        seen.append(kwargs["ref"])
        return real(*args, **kwargs)

    monkeypatch.setattr(history, "log", spied)
    return seen


def commit(repo: WorkspaceRepo, i: int, *paths: str) -> None:
    repo.commit(Changeset({p: f"{i}\n".encode() for p in paths}, f"change {i}: {paths}"), SIG)


def agree(logs: history.PathLogs, repo: WorkspaceRepo) -> None:
    for paths in PATHS:
        for limit, skip in PAGES:
            want = history.log(repo.path, paths, limit=limit, skip=skip)
            got = logs.log(paths, limit=limit, skip=skip)
            assert got == want, (paths, limit, skip)


def test_kept_logs_answer_as_git_log_whatever_main_does(repo, monkeypatch):
    monkeypatch.setattr(history, "FORWARD", 40)  # a long way forward, without 256 commits
    logs = history.PathLogs(repo)
    for i in range(1, 121):  # more than KEPT commits of some paths, few of c.txt
        commit(repo, i, "a.txt" if i % 2 else "b.txt", *(["dir/x.txt"] if i % 7 == 0 else []))
    commit(repo, 121, "c.txt")
    agree(logs, repo)
    commit(repo, 122, "a.txt")  # forward by one
    commit(repo, 123, "c.txt")
    agree(logs, repo)
    for i in range(124, 130):  # forward by several, only elsewhere
        commit(repo, i, "dir/y.txt")
    agree(logs, repo)

    # A merge on main: a side commit touching b.txt, merged with main's tree.
    main = git(repo.path, "rev-parse", "main").strip()
    blob = git_in(repo, "side\n", "hash-object", "-w", "--stdin")
    tree = git_in(repo, _tree_with(repo, "main", "b.txt", blob), "mktree")
    side = git(repo.path, "commit-tree", tree, "-p", f"{main}~5", "-m", "side").strip()
    merge = git(repo.path, "commit-tree", tree, "-p", main, "-p", side, "-m", "merge").strip()
    git(repo.path, "update-ref", "refs/heads/main", merge)
    agree(logs, repo)

    git(repo.path, "update-ref", "refs/heads/main", f"{main}~30")  # main moved back
    agree(logs, repo)
    git(repo.path, "update-ref", "refs/heads/main", merge)  # and forward again, past a merge
    agree(logs, repo)
    for i in range(130, 175):  # further than FORWARD
        commit(repo, i, "a.txt")
    agree(logs, repo)


def git_in(repo: WorkspaceRepo, stdin: str, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo.path), *args], input=stdin, check=True,
                          capture_output=True, text=True).stdout.strip()


def _tree_with(repo: WorkspaceRepo, rev: str, path: str, blob: str) -> str:
    """`git mktree` input: the top level of `rev` with `path` pointing at `blob`."""
    lines = []
    for line in git(repo.path, "ls-tree", rev).splitlines():
        meta, name = line.split("\t", 1)
        if name == path:
            meta = meta.rsplit(" ", 1)[0] + f" {blob}"
        lines.append(f"{meta}\t{name}")
    return "\n".join(lines) + "\n"


def test_after_commits_on_top_only_those_commits_are_read(repo, reads):
    logs = history.PathLogs(repo)
    for i in range(1, 6):
        commit(repo, i, "a.txt")
    first = git(repo.path, "rev-parse", "main").strip()
    assert [e.message for e in logs.log(["a.txt"], limit=2)] == [
        "change 5: ('a.txt',)", "change 4: ('a.txt',)"]
    assert reads == [first]
    assert len(logs.log(["a.txt"], limit=50)) == 6 and reads == [first]  # kept: no git at all
    commit(repo, 6, "b.txt")
    commit(repo, 7, "a.txt")
    tip = git(repo.path, "rev-parse", "main").strip()
    assert [e.message for e in logs.log(["a.txt"], limit=1)] == ["change 7: ('a.txt',)"]
    assert reads == [first, f"{first}..{tip}"]
    logs.log(["a.txt"], limit=50, skip=60)  # past what is kept: git log for that page
    assert reads[-1] == tip and len(reads) == 3
    commit(repo, 8, "b.txt")  # commits elsewhere: the tree tells, no git process
    commit(repo, 9, "dir/a.txt")
    assert [e.message for e in logs.log(["a.txt"], limit=1)] == ["change 7: ('a.txt',)"]
    assert len(reads) == 3
    commit(repo, 10, "a.txt")
    assert [e.message for e in logs.log(["a.txt"], limit=1)] == ["change 10: ('a.txt',)"]
    assert len(reads) == 4

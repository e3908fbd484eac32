"""A branch moves by compare-and-swap under git's lock file, and its reflog reads as libgit2
and git write it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pygit2
import pytest

from floom_git.storage import refs
from floom_git.storage.repo import MAIN, RUNS, Changeset, RefMoved, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("Ann Example", "ann@example.com")
MESSAGES = ["one line", "  leading space", "first\nsecond line\n\nbody", "trailing  \n\n",
            "tabs\tinside\n \nafter a blank-ish line", "über ünïcode", "a\n  b\n\tc\n\nd",
            "\nleading newline", "\n\nblank first", "x\r\ny\r\n\r\nz", "end\n"]


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    return WorkspaceRepo.create(tmp_path / "ws", {"a.txt": b"a\n"}, "init", SIG)


def reflog(path: Path, name: str) -> list[str]:
    return (path / ".git" / "logs" / name).read_text().splitlines()


@pytest.mark.parametrize("message", MESSAGES)
def test_reflog_lines_are_the_ones_libgit2_writes(repo, tmp_path, message):
    other = pygit2.init_repository(str(tmp_path / "lib"), initial_head="main")
    other.config["core.logAllRefUpdates"] = True
    tree = other.TreeBuilder().write()
    first = other.create_commit("refs/heads/main", SIG, SIG, message, tree, [])
    other.create_commit("refs/heads/main", SIG, SIG, message, tree, [first])
    theirs = reflog(tmp_path / "lib", "refs/heads/main")
    old = str(repo.tip().id)
    result = repo.commit(Changeset({"b.txt": message.encode()}, message), SIG)
    ours = reflog(repo.path, "refs/heads/main")[-1]
    assert ours.split("\t", 1)[1] == theirs[1].split("\t", 1)[1]
    assert ours.split(" ")[:2] == [old, result.sha]
    assert reflog(repo.path, "HEAD")[-1] == ours
    assert theirs[0].split("\t", 1)[1] == refs.commit_message(message, initial=True)


def test_git_reads_the_reflog_of_api_commits_and_of_a_new_branch(repo):
    repo.commit(Changeset({"b.txt": b"b"}, "context x: update b.txt"), SIG)
    repo.commit(Changeset({"r.json": b"{}"}, "runs: record"), SIG, ref=RUNS)
    out = git(repo.path, "reflog", "show", "--format=%gs|%gn|%ge", "main")
    assert out.splitlines() == ["commit: context x: update b.txt|Ann Example|ann@example.com",
                                "commit (initial): init|Ann Example|ann@example.com"]
    assert git(repo.path, "reflog", "show", "--format=%gs", "floom/runs") == \
        "commit (initial): runs: record\n"
    assert len(reflog(repo.path, "HEAD")) == 2  # HEAD names main, not floom/runs
    git(repo.path, "fsck", "--strict")


def test_a_branch_that_moved_is_not_moved_again(repo):
    tip = repo.tip()
    commit = repo.repo.create_commit(None, SIG, SIG, "x", tip.tree.id, [tip.id])
    with pytest.raises(RefMoved):
        refs.move(repo.repo, MAIN, "0" * 40, str(commit), SIG, "commit: x")
    assert repo.tip().id == tip.id
    assert not (repo.path / ".git" / "refs/heads/main.lock").exists()
    assert len(reflog(repo.path, "refs/heads/main")) == 1
    with pytest.raises(ValueError):
        refs.move(repo.repo, "HEAD", str(tip.id), str(commit), SIG, "commit: x")
    assert git(repo.path, "symbolic-ref", "HEAD") == "refs/heads/main\n"


def test_a_commit_on_a_branch_a_person_moved_meanwhile_is_rebuilt_by_the_writer(repo):
    git(repo.path, "commit", "-q", "--allow-empty", "-m", "theirs")  # main moves under us
    theirs = str(repo.tip().id)
    result = repo.commit(Changeset({"b.txt": b"b"}, "ours"), SIG)
    assert git(repo.path, "rev-parse", "HEAD~1").strip() == theirs and result.parent == theirs


def test_a_lock_held_by_a_persons_git_fails_the_move_and_stays(repo):
    lock = repo.path / ".git" / "refs/heads/main.lock"
    lock.write_text("theirs\n")
    tip = repo.tip().id
    with pytest.raises(OSError):
        repo.commit(Changeset({"b.txt": b"b"}, "b"), SIG)
    assert repo.tip().id == tip and lock.read_text() == "theirs\n"
    lock.unlink()
    assert repo.commit(Changeset({"b.txt": b"b"}, "b"), SIG).sha
    assert git(repo.path, "status", "--porcelain") == ""


def test_a_missing_reflog_folder_is_made_again(repo):
    shutil.rmtree(repo.path / ".git" / "logs")
    result = repo.commit(Changeset({"b.txt": b"b"}, "context x: update b.txt"), SIG)
    assert reflog(repo.path, "refs/heads/main")[-1].split(" ")[1] == result.sha
    assert reflog(repo.path, "HEAD") == reflog(repo.path, "refs/heads/main")
    assert git(repo.path, "reflog", "show", "--format=%gs", "main") == \
        "commit: context x: update b.txt\n"

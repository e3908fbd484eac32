"""The index is updated without re-encoding it: git and libgit2 read what the server writes, an
index another program wrote meanwhile is read again, and a file changed in the second its entry
was written is never taken for clean."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pygit2
import pytest

from floom_git.storage import index_file, lockfile
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    files = {"a.txt": b"a\n", "dir/b.txt": b"b\n", "dir/sub/c.txt": b"c\n",
             "run.sh": b"#!/bin/sh\n"}
    return WorkspaceRepo.create(tmp_path / "ws", files, "init", SIG)


def status(repo: WorkspaceRepo) -> str:
    return git(repo.path, "status", "--porcelain", "--untracked-files=all")


def staged(repo: WorkspaceRepo) -> str:
    return git(repo.path, "ls-files", "--stage")


def index_version(repo: WorkspaceRepo) -> int:
    return int.from_bytes((repo.path / ".git" / "index").read_bytes()[4:8], "big")


def test_git_and_libgit2_read_what_the_server_writes(repo):
    repo.commit(Changeset({"dir/new.txt": b"n\n", "a.txt": b"a2\n", "dir/sub/c.txt": None},
                          "api"), SIG)
    assert status(repo) == "" and index_version(repo) == 2
    assert git(repo.path, "ls-files").split() == ["a.txt", "dir/b.txt", "dir/new.txt", "run.sh"]
    assert git(repo.path, "diff-index", "--cached", "HEAD") == ""  # the index is HEAD's tree
    fresh = pygit2.Repository(str(repo.path))
    assert {e.path: e.id for e in fresh.index} == {
        p: fresh.head.peel(pygit2.Commit).tree[p].id for p in
        ("a.txt", "dir/b.txt", "dir/new.txt", "run.sh")}
    assert fresh.status() == {}
    (repo.path / "a.txt").write_text("person\n")
    assert status(repo) == " M a.txt\n"


def test_every_version_git_writes_is_read_and_kept_entry_for_entry(repo):
    os.chmod(repo.path / "run.sh", 0o755)
    git(repo.path, "update-index", "--chmod=+x", "run.sh")
    git(repo.path, "commit", "-qm", "exec")
    for version in ("4", "3", "2"):
        git(repo.path, "update-index", "--index-version", version)
        before = staged(repo)
        repo.commit(Changeset({f"v{version}/x.txt": b"x\n"}, f"api {version}"), SIG)
        after = staged(repo)
        assert after.replace(f"v{version}/x.txt", "") != after
        assert [line for line in after.splitlines() if f"v{version}/" not in line] == \
            before.splitlines()
        assert status(repo) == ""
    assert "100755" in git(repo.path, "ls-files", "--stage", "run.sh")


def test_an_unchanged_index_written_by_git_is_written_back_byte_for_byte(repo):
    git(repo.path, "update-index", "--index-version", "2")
    git(repo.path, "rm", "-q", "--cached", "a.txt")  # no extensions: just the entries
    git(repo.path, "add", "a.txt")
    data = (repo.path / ".git" / "index").read_bytes()
    parsed = index_file.parse(repo.path / ".git", data)
    assert parsed is not None and parsed._bytes() == data


def test_an_index_another_program_wrote_meanwhile_is_read_again(repo):
    repo.commit(Changeset({"one.txt": b"1\n"}, "api"), SIG)
    (repo.path / "dir/b.txt").write_text("staged by a person\n")
    git(repo.path, "add", "dir/b.txt")  # git writes the index: ours is out of date
    repo.commit(Changeset({"two.txt": b"2\n"}, "api"), SIG)
    assert status(repo) == "M  dir/b.txt\n"  # their staged change is still staged
    assert "two.txt" in git(repo.path, "ls-files")


def test_a_file_and_a_folder_never_stand_side_by_side_in_the_index(repo):
    repo.commit(Changeset({"dir": None}, "rm"), SIG)
    repo.commit(Changeset({"dir": b"now a file\n"}, "file"), SIG)
    assert status(repo) == ""
    repo.commit(Changeset({"dir/x/y.txt": b"a folder again\n"}, "folder"), SIG)
    assert status(repo) == ""
    assert git(repo.path, "ls-files").split() == ["a.txt", "dir/x/y.txt", "run.sh"]


def test_a_required_extension_leaves_the_index_to_libgit2(repo):
    git(repo.path, "update-index", "--split-index")
    assert index_file.load(repo.path / ".git") is None
    data = (repo.path / ".git" / "index").read_bytes()
    assert index_file.parse(repo.path / ".git", data[:-1] + bytes([data[-1] ^ 1])) is None


def test_a_held_lock_fails_the_write_and_leaves_the_index_as_it_was(repo, monkeypatch):
    monkeypatch.setattr(index_file, "LOCK_WAIT", 0.1)
    lock = repo.path / ".git" / "index.lock"
    lock.write_bytes(b"")
    index = index_file.load(repo.path / ".git")
    assert index is not None
    before = (repo.path / ".git" / "index").read_bytes()
    index.remove("a.txt")
    with pytest.raises(lockfile.LockHeld):
        index.write(repo.path)
    assert lock.read_bytes() == b"" and (repo.path / ".git" / "index").read_bytes() == before
    lock.unlink()
    assert index_file.load(repo.path / ".git") is not None


def test_a_same_size_edit_in_the_entrys_second_is_smudged_when_the_index_moves_on(repo):
    git(repo.path, "config", "core.trustctime", "false")  # mtime and size alone, as git may
    repo.commit(Changeset({"note.txt": b"server\n"}, "api"), SIG)
    note = repo.path / "note.txt"
    st = os.stat(note)
    note.write_bytes(b"person\n")  # same size, and the same mtime as the entry
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(1.05 - time.time() % 1)  # the next index is written in a later second
    repo.commit(Changeset({"other.txt": b"o\n"}, "api"), SIG)
    assert status(repo) == " M note.txt\n"
    assert git(repo.path, "diff", "--stat").strip().startswith("note.txt")


def test_only_the_indexes_of_recently_written_workspaces_stay_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(index_file, "KEEP", 3)
    repos = [WorkspaceRepo.create(tmp_path / f"ws{i}", {"a.txt": b"a\n"}, "init", SIG)
             for i in range(5)]
    for repo in repos:
        repo.commit(Changeset({"b.txt": b"b\n"}, "api"), SIG)
    kept = list(index_file._CACHE)
    assert len(kept) <= 3 and kept[-1] == repos[-1].path / ".git"
    repos[0].commit(Changeset({"c.txt": b"c\n"}, "api"), SIG)  # read again from disk, and kept
    assert status(repos[0]) == "" and list(index_file._CACHE)[-1] == repos[0].path / ".git"

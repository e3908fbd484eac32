"""The working tree follows main without losing a person's edit: storage/worktree.py through
WorkspaceRepo.commit on real repositories (check_worktree=False stands for an edit saved after
the API's clean check passed, i.e. at the moment of writing)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pygit2
import pytest

from floom_git.storage import journal, worktree
from floom_git.storage.repo import JOURNAL, Changeset, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    files = {"a.txt": b"a\n", "dir/b.txt": b"b\n", "dir/sub/c.txt": b"c\n",
             ".gitignore": b"__pycache__/\n"}
    return WorkspaceRepo.create(tmp_path / "ws", files, "init", SIG)


def status(repo: WorkspaceRepo) -> str:
    return git(repo.path, "status", "--porcelain", "--untracked-files=all")


def test_commit_keeps_edit_saved_after_the_check(repo):
    (repo.path / "a.txt").write_text("person\n")
    result = repo.commit(Changeset({"a.txt": b"server\n"}, "api"), SIG, check_worktree=False)
    assert result.sha and result.unsynced == ("a.txt",)
    assert (repo.path / "a.txt").read_text() == "person\n"
    assert git(repo.path, "show", "HEAD:a.txt") == "server\n"
    assert status(repo) == " M a.txt\n"  # an ordinary unstaged edit for the next sync


def test_commit_delete_keeps_edited_file(repo):
    (repo.path / "a.txt").write_text("person\n")
    repo.commit(Changeset({"a.txt": None}, "api delete"), SIG, check_worktree=False)
    assert (repo.path / "a.txt").read_text() == "person\n"
    assert status(repo) == "?? a.txt\n"


def test_commit_keeps_file_deleted_by_person(repo):
    (repo.path / "a.txt").unlink()
    repo.commit(Changeset({"a.txt": b"server\n"}, "api"), SIG, check_worktree=False)
    assert not (repo.path / "a.txt").exists()  # their deletion is the newer edit
    assert status(repo) == " D a.txt\n"


def test_commit_refuses_folder_to_file_over_person_file_then_keeps_it(repo):
    (repo.path / "dir/sub/new.txt").write_text("person\n")
    repo.commit(Changeset({"dir": b"file now\n"}, "api"), SIG, check_worktree=False)
    assert (repo.path / "dir/sub/new.txt").read_text() == "person\n"
    assert not (repo.path / "dir/b.txt").exists()  # the server's files in the way are gone


@pytest.mark.parametrize("changes", [
    {"dir": b"a file where a folder was\n"},
    {"dir/sub": b"deeper\n"},
    {"a.txt/x/y.txt": b"a folder where a file was\n"},
    {"dir": None},
    {"dir/b.txt": None, "dir/sub/c.txt": None, "dir/sub": None},
])
def test_commit_type_changes_sync_exactly(repo, changes):
    (repo.path / "dir/sub/__pycache__").mkdir()
    (repo.path / "dir/sub/__pycache__/c.cpython-311.pyc").write_bytes(b"cache")
    repo.commit(Changeset(changes, "types"), SIG)
    assert status(repo) == ""
    listed = git(repo.path, "ls-tree", "-r", "--name-only", "HEAD").split()
    on_disk = sorted(p.relative_to(repo.path).as_posix() for p in repo.path.rglob("*")
                     if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts)
    assert on_disk == sorted(listed)
    if not any(p.startswith("dir/sub/") for p in listed):  # caches do not keep a folder alive
        assert not (repo.path / "dir/sub").is_dir()


def test_commit_never_writes_through_a_symlinked_folder(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(repo.path / "dir", tmp_path / "moved")
    (repo.path / "dir").symlink_to(outside)
    repo.commit(Changeset({"dir/b.txt": b"server\n"}, "api"), SIG, check_worktree=False)
    assert list(outside.iterdir()) == []


def test_commit_landed_when_index_is_locked_is_acknowledged_and_repaired(repo):
    lock = Path(repo.repo.path) / "index.lock"
    lock.write_bytes(b"")  # a person's git holds the index longer than we wait
    result = repo.commit(Changeset({"a.txt": b"server\n"}, "api"), SIG)
    assert result.sha and git(repo.path, "show", "HEAD:a.txt") == "server\n"
    assert journal.pending(Path(repo.repo.path))
    lock.unlink()
    repo.commit(Changeset({"dir/b.txt": b"next\n"}, "next"), SIG)  # repairs the earlier one
    assert status(repo) == ""
    assert not journal.pending(Path(repo.repo.path))


def test_recover_after_crash_keeps_edit_saved_meanwhile(repo):
    """Crash after the ref moved: recovery writes what the server committed, except over a
    file a person changed since."""
    old = str(repo.tip().id)
    repo.commit(Changeset({"a.txt": b"one\n", "dir/b.txt": b"two\n"}, "api"), SIG)
    (repo.path / "a.txt").write_text("a\n")  # as before the commit: the sync never ran
    (repo.path / "dir/b.txt").write_text("person\n")
    journal = Path(repo.repo.path) / JOURNAL
    journal.write_text(f'{{"from": "{old}", "files": ["a.txt", "dir/b.txt"], "index_only": false}}')
    assert WorkspaceRepo(repo.path).recover() == ["a.txt", "dir/b.txt"]
    assert (repo.path / "a.txt").read_text() == "one\n"
    assert (repo.path / "dir/b.txt").read_text() == "person\n"
    assert status(repo) == " M dir/b.txt\n"


def test_recover_puts_back_a_file_a_killed_sync_had_taken_aside(repo):
    """Killed between taking a person's freshly saved file aside and putting it back: the
    recovery restores it, and it stays (it is not what the server committed)."""
    old = str(repo.tip().id)
    repo.commit(Changeset({"a.txt": b"server\n"}, "api"), SIG)
    (repo.path / "a.txt").unlink()
    (repo.path / ".floom-aside-0a1b2c3d-a.txt").write_text("person\n")
    (Path(repo.repo.path) / JOURNAL).write_text(
        f'{{"from": "{old}", "files": ["a.txt"], "index_only": false}}')
    WorkspaceRepo(repo.path).recover()
    assert (repo.path / "a.txt").read_text() == "person\n"
    assert not list(repo.path.glob(".floom-*"))
    assert status(repo) == " M a.txt\n"


def test_settled_reads_a_file_or_reports_it_gone(tmp_path):
    from pathlib import Path

    from floom_git.storage.worktree import settled

    there = tmp_path / "there.md"
    there.write_bytes(b"x\n")
    assert settled(Path.read_bytes, there) == b"x\n"
    assert settled(Path.read_bytes, tmp_path / "gone.md") is None  # looked for twice


def test_new_file_written_in_the_git_dir_or_beside_its_target_on_another_file_system(repo):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(repo.path).st_dev:
        pytest.skip("needs /dev/shm on another file system")
    scratch = Path(tempfile.mkdtemp(dir=shm))
    try:
        for where in (Path(repo.repo.path), scratch):  # same file system; another one
            disk = worktree._Disk(repo.path, where)
            name = f"dir/from-{where.name}.txt"
            assert disk.replace_if(name, None, b"new\n", False)
            assert (repo.path / name).read_bytes() == b"new\n"
            old = worktree.Entry(pygit2.hash(b"new\n"), 0o100644)
            assert disk.replace_if(name, old, b"newer\n", True)
            assert (repo.path / name).read_bytes() == b"newer\n"
            assert os.stat(repo.path / name).st_mode & 0o100
            assert not [p for p in (*scratch.iterdir(), *Path(repo.repo.path).iterdir(),
                                    *(repo.path / "dir").iterdir())
                        if p.name.startswith(worktree.TEMP_PREFIX)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named-temp"])
def test_new_bytes_are_placed_whole_and_leave_no_temporary_name(repo, monkeypatch, unnamed):
    if not unnamed:
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    disk = worktree._Disk(repo.path, Path(repo.repo.path))
    assert disk.replace_if("dir/n.txt", None, b"new\n", False)
    old = worktree.Entry(pygit2.hash(b"new\n"), 0o100644)
    assert disk.replace_if("dir/n.txt", old, b"newer\n", True)
    assert (repo.path / "dir/n.txt").read_bytes() == b"newer\n"
    assert os.stat(repo.path / "dir/n.txt").st_mode & 0o777 == 0o755
    (repo.path / "dir/p.txt").write_text("person\n")  # saved before ours could go in
    assert not disk.replace_if("dir/p.txt", None, b"server\n", False)
    assert (repo.path / "dir/p.txt").read_text() == "person\n"
    leftovers = [p for p in (*Path(repo.repo.path).iterdir(), *(repo.path / "dir").iterdir())
                 if p.name.startswith(worktree.TEMP_PREFIX)]
    assert leftovers == []

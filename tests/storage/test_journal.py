"""The sync journal is one page overwritten in place, blank when nothing is pending."""

from __future__ import annotations

from pathlib import Path

from floom_git.storage import journal
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("tester", "tester@example.com")


def test_an_emptied_journal_is_not_pending(tmp_path: Path) -> None:
    assert not journal.pending(tmp_path) and journal.read(tmp_path) is None
    journal.clear(tmp_path)  # nothing to clear: no file is made
    assert not (tmp_path / journal.NAME).exists()
    journal.write(tmp_path, {"from": None, "files": ["a.txt"]})
    assert journal.pending(tmp_path)
    assert journal.read(tmp_path) == {"from": None, "files": ["a.txt"]}
    inode = (tmp_path / journal.NAME).stat().st_ino
    journal.clear(tmp_path)
    assert (tmp_path / journal.NAME).read_bytes() == journal.BLANK
    assert not journal.pending(tmp_path) and journal.read(tmp_path) is None
    journal.clear(tmp_path)  # clearing twice is fine
    journal.write(tmp_path, {"from": "b" * 40, "files": []})
    assert (tmp_path / journal.NAME).stat().st_ino == inode  # the same page, overwritten
    assert len((tmp_path / journal.NAME).read_bytes()) == journal.PAGE


def test_a_long_record_is_replaced_whole_and_a_short_one_overwrites_it(tmp_path: Path) -> None:
    files = [f"contexts/c/files/{i:05d}.md" for i in range(400)]
    journal.write(tmp_path, {"from": "a" * 40, "files": files})
    assert len((tmp_path / journal.NAME).read_bytes()) > journal.PAGE
    assert journal.read(tmp_path) == {"from": "a" * 40, "files": files}
    journal.write(tmp_path, {"from": None, "files": []})  # no tail of the longer one is left
    assert journal.read(tmp_path) == {"from": None, "files": []}
    assert len((tmp_path / journal.NAME).read_bytes()) == journal.PAGE


def test_an_unreadable_journal_is_pending_and_read_as_empty(tmp_path: Path) -> None:
    (tmp_path / journal.NAME).write_bytes(b'{"from": "ab')
    assert journal.pending(tmp_path) and journal.read(tmp_path) == {}
    (tmp_path / journal.NAME).write_bytes(b"[1, 2]")
    assert journal.read(tmp_path) == {}


def test_commits_leave_the_journal_blank_in_place(tmp_path: Path) -> None:
    repo = WorkspaceRepo.create(tmp_path / "ws", {"a.txt": b"a\n"}, "init", SIG)
    for i in range(3):
        repo.commit(Changeset({f"d/{i}.txt": b"x\n"}, f"c{i}"), SIG)
    git_dir = Path(repo.repo.path)
    assert not journal.pending(git_dir)
    assert WorkspaceRepo(repo.path).recover() == []  # nothing to redo
    assert git(repo.path, "status", "--porcelain") == ""

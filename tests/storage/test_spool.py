"""Reading a server-owned branch's file together with the lines still spooled for it
(storage/spool.py committed_and_spooled), in each state a flush can leave them in."""

from __future__ import annotations

from pathlib import Path

from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from floom_git.storage.spool import committed_and_spooled, read_if_there

SIG = signature("tester", "tester@example.com")
REF = "refs/heads/floom/notes"


def test_committed_lines_then_the_spooled_ones_each_once(tmp_path: Path) -> None:
    repo = WorkspaceRepo.create(tmp_path / "ws", {"README.md": b"r\n"}, "init", SIG)
    pending = tmp_path / "spool" / "n.log"
    pending.parent.mkdir()
    # Neither committed nor spooled.
    assert committed_and_spooled(repo, REF, "n.log", pending) is None
    # Only spooled.
    pending.write_bytes(b"a\nb\n")
    assert committed_and_spooled(repo, REF, "n.log", pending) == b"a\nb\n"
    # Committed, and the spool not cleaned up yet (a crash, or a read in between): not twice.
    repo.commit(Changeset({"n.log": b"a\nb\n"}, "notes"), SIG, ref=REF)
    assert committed_and_spooled(repo, REF, "n.log", pending) == b"a\nb\n"
    pending.write_bytes(b"a\nb\nc\n")  # one line appended since
    assert committed_and_spooled(repo, REF, "n.log", pending) == b"a\nb\nc\n"
    # Committed and the spool dropped.
    pending.unlink()
    assert committed_and_spooled(repo, REF, "n.log", pending) == b"a\nb\n"
    assert committed_and_spooled(repo, REF, "n.log", tmp_path / "gone" / "n.log") == b"a\nb\n"
    assert read_if_there(pending) is None and read_if_there(tmp_path / "spool") is None

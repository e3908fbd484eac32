"""A file of git's is replaced whole under its lock, or left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from floom_git.storage import lockfile


def test_replaced_whole_when_the_block_ends_and_left_alone_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "index"
    target.write_bytes(b"old and longer\n")
    with lockfile.replacing(target) as fd:
        lockfile.put(fd, b"first try, overwritten\n")
        lockfile.put(fd, b"new\n")
    assert target.read_bytes() == b"new\n" and not (tmp_path / "index.lock").exists()
    with pytest.raises(RuntimeError), lockfile.replacing(target) as fd:
        lockfile.put(fd, b"never\n")
        raise RuntimeError("refused")
    assert target.read_bytes() == b"new\n" and not (tmp_path / "index.lock").exists()
    with lockfile.replacing(target) as fd:
        lockfile.put(fd, b"")
    assert target.read_bytes() == b""


def test_a_lock_held_elsewhere_is_waited_for_then_refused(tmp_path: Path) -> None:
    target = tmp_path / "main"
    (tmp_path / "main.lock").write_bytes(b"theirs")
    with pytest.raises(lockfile.LockHeld), lockfile.replacing(target, wait=0.1):
        pass
    assert (tmp_path / "main.lock").read_bytes() == b"theirs" and not target.exists()

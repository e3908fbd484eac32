"""The workspaces folder carries ext4's TOPDIR flag (storage/block_groups.py), so each workspace
is placed in a block group of its own; where the flag cannot be set, nothing fails."""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.services.workspaces import WorkspaceManager
from floom_git.storage import block_groups


def flags(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        out = array.array("i", [0, 0])
        fcntl.ioctl(fd, block_groups.FS_IOC_GETFLAGS, out)
        return out[0]
    finally:
        os.close(fd)


def topdir(folder: Path) -> bool:
    """`folder` carries the TOPDIR flag (False where flags cannot be read)."""
    try:
        return bool(flags(folder) & block_groups.FS_TOPDIR_FL)
    except OSError:
        return False


def takes_the_flag(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        return block_groups.mark_top(probe)
    finally:
        probe.rmdir()


def test_the_workspaces_folder_carries_the_flag_where_the_file_system_takes_it(
    tmp_path: Path,
) -> None:
    if not takes_the_flag(tmp_path):
        pytest.skip("the test's file system has no TOPDIR flag (not ext2/3/4)")
    settings = Settings(data_dir=tmp_path / "data", watch=False)
    WorkspaceManager(settings).create_sync("acme")
    root = settings.workspaces_dir
    assert topdir(root)
    assert not topdir(root / "acme")  # only the folder that holds them
    if shutil.which("lsattr"):  # what `chattr +T` would have set, as e2fsprogs reads it
        shown = subprocess.run(["lsattr", "-d", str(root)], capture_output=True, text=True,
                               check=True).stdout.split()[0]
        assert "T" in shown


def test_setting_the_flag_keeps_the_folders_other_flags_and_is_idempotent(
    tmp_path: Path,
) -> None:
    if not takes_the_flag(tmp_path):
        pytest.skip("the test's file system has no TOPDIR flag (not ext2/3/4)")
    folder = tmp_path / "workspaces"
    folder.mkdir()
    before = flags(folder)
    assert block_groups.mark_top(folder)
    assert flags(folder) == before | block_groups.FS_TOPDIR_FL
    assert block_groups.mark_top(folder)  # already set: kept, nothing else changes
    assert flags(folder) == before | block_groups.FS_TOPDIR_FL


def test_a_server_whose_data_is_where_the_flag_cannot_be_set_starts_and_creates(
    tmp_path: Path,
) -> None:
    assert not block_groups.mark_top(tmp_path / "missing")
    file = tmp_path / "file"
    file.write_bytes(b"x")
    assert not block_groups.mark_top(file)
    assert not topdir(file)
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return
    data = Path(os.path.realpath(shm)) / f"floom-test-{os.getpid()}"
    try:
        settings = Settings(data_dir=data, watch=False)
        manager = WorkspaceManager(settings)
        manager.create_sync("acme")  # tmpfs has no such flag: created all the same
        assert not topdir(settings.workspaces_dir)
        assert (settings.workspaces_dir / "acme" / ".git").is_dir()
        manager.open_all()
    finally:
        shutil.rmtree(data, ignore_errors=True)

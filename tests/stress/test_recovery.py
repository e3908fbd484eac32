"""Regression tests for what the crash test found: a server killed mid-write leaves temporary
files in the working tree and lock files or temporary objects in .git; opening the repository
again must clear them so that the tree is clean, fsck is silent and writes go through."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.services.workspaces import WorkspaceManager
from floom_git.storage.repo import JOURNAL, RUNS, Changeset, WorkspaceRepo, signature
from floom_git.storage.writer import Writer
from tests.conftest import git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    files = {"a.txt": b"a\n", "workers/w1/run.py": b"print(1)\n", ".floom-keep": b"tracked\n"}
    WorkspaceRepo.create(tmp_path / "ws", files, "init", SIG)
    return tmp_path / "ws"


def crash_mid_sync(path: Path, files: list[str]) -> None:
    """What a SIGKILL inside WorkspaceRepo.commit's working-tree sync leaves: the journal, a
    half-written temporary file next to the target, and maybe the index lock."""
    (path / ".git" / JOURNAL).write_text(json.dumps({"files": files}))
    for f in files:
        (path / f).parent.mkdir(parents=True, exist_ok=True)
        (path / f).parent.joinpath(".floom-k1ll3d_x").write_bytes(b"half")


def fsck_output(path: Path) -> str:
    proc = subprocess.run(["git", "-C", str(path), "fsck", "--strict", "--no-dangling"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_recover_after_kill_mid_sync_removes_temp_files(path):
    repo = WorkspaceRepo(path)
    repo.commit(Changeset({"workers/w2/run.py": b"print(2)\n"}, "add w2"), SIG,
                check_worktree=False)
    crash_mid_sync(path, ["workers/w2/run.py", "workers/w3/gone.txt"])
    WorkspaceRepo(path).recover()
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (path / "workers/w3").exists()  # only a temp file was ever there
    assert (path / ".floom-keep").read_bytes() == b"tracked\n"  # tracked files stay


@pytest.mark.parametrize(
    "lock",
    [
        "index.lock",
        "refs/heads/main.lock",
        "refs/heads/floom/runs.lock",
        "packed-refs.lock",
        "HEAD.lock",
    ],
)
async def test_write_after_kill_with_stale_lock_commits(path, lock):
    (path / ".git" / lock).parent.mkdir(parents=True, exist_ok=True)
    (path / ".git" / lock).write_bytes(b"")
    crash_mid_sync(path, ["a.txt"])
    repo = WorkspaceRepo(path)
    repo.recover()
    writer = Writer(repo)
    for ref in ("refs/heads/main", RUNS):
        result = await writer.write(lambda r: Changeset({"b.txt": b"b\n"}, "add b"), SIG, ref=ref)
        assert result.sha is not None
    assert not (path / ".git" / lock).exists()
    assert git(path, "status", "--porcelain") == ""


def test_open_all_after_kill_with_index_lock_and_journal_starts(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", secret="s", watch=False)
    WorkspaceManager(settings).create_sync("default")
    ws_path = settings.workspaces_dir / "default"
    (ws_path / ".git" / "index.lock").write_bytes(b"")
    crash_mid_sync(ws_path, ["workspace.md"])
    manager = WorkspaceManager(settings)
    manager.open_all()  # before the fix: GitError "the index is locked" and no start-up
    assert manager.ids() == ["default"]
    assert git(ws_path, "status", "--porcelain", "--untracked-files=all") == ""


def test_recover_removes_temporary_objects_and_quarantine(path):
    objects = path / ".git" / "objects"
    (objects / "ab").mkdir(exist_ok=True)
    (objects / "ab" / "tmp_object_git2_Xy12Zw").write_bytes(b"half an object")
    (objects / "incoming-Ab12Cd" / "pack").mkdir(parents=True)  # git before 2.27
    (objects / "tmp_objdir-incoming-Ef34Gh" / "pack").mkdir(parents=True)  # and since
    assert "bad sha1 file" in fsck_output(path)
    WorkspaceRepo(path).recover()
    assert fsck_output(path) == ""
    assert not (objects / "incoming-Ab12Cd").exists()
    assert not (objects / "tmp_objdir-incoming-Ef34Gh").exists()

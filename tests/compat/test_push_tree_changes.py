"""Every tree change a push can make is synced exactly into the server's working tree and index
(file<->folder at any depth, the executable bit, whole-tree deletes, renames, case-only renames),
and a person's on-disk edit saved while a push lands is never overwritten. Real git client."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from floom_git.http.keys import MANAGER
from floom_git.services import sync
from floom_git.services.workspaces import WorkspaceManager
from floom_git.storage.repo import Changeset, signature
from tests.conftest import SECRET, git

# ("write", path, text, executable) | ("rm", path) | ("mv", src, dst) | ("chmod", path, x)
Step = tuple


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
    """`git status` is clean and every file of main is on disk with its bytes and mode, and
    nothing else is."""
    assert git(ws_path, "status", "--porcelain", "--untracked-files=all") == ""
    on_disk = {p.relative_to(ws_path).as_posix() for p in ws_path.rglob("*")
               if ".git" not in p.relative_to(ws_path).parts and not p.is_dir()}
    in_main = set()
    for line in git(ws_path, "ls-tree", "-r", "main").splitlines():
        meta, path = line.split("\t", 1)
        mode, _, sha = meta.split()
        in_main.add(path)
        full = ws_path / path
        assert full.is_file() and not full.is_symlink(), path
        assert git(ws_path, "hash-object", path).strip() == sha, path
        assert bool(full.stat().st_mode & stat.S_IXUSR) == (mode == "100755"), path
    assert on_disk == in_main


def apply(clone: Path, step: Step) -> None:
    """Make one tree change in a clone's working tree, whatever stands in the way."""
    kind, path = step[0], clone / step[1]
    if kind == "write":
        _, _, text, executable = step
        put(clone, path, text.encode(), executable)
    elif kind == "rm":
        remove(path)
    elif kind == "mv":
        target = clone / step[2]
        if not path.exists() or target == path or path in target.parents:
            return
        moved = {p.relative_to(path): (p.read_bytes(), os.access(p, os.X_OK))
                 for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()}
        remove(path)
        for rel, (data, executable) in moved.items():
            put(clone, target / rel if rel != Path(".") else target, data, executable)
    elif kind == "chmod" and path.is_file():
        path.chmod(0o755 if step[2] else 0o644)


def put(clone: Path, path: Path, data: bytes, executable: bool) -> None:
    for parent in reversed(path.relative_to(clone).parents[:-1]):
        if (clone / parent).is_file():
            (clone / parent).unlink()  # a file where a folder must be: file -> folder
    remove(path) if path.is_dir() else None  # a folder where the file must be: folder -> file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755 if executable else 0o644)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@pytest.fixture
async def clone(server, git_env, tmp_path) -> Path:
    url = f"http://anyone:{SECRET}@127.0.0.1:{server.port}/git/default.git"
    await agit(tmp_path, "clone", "-q", url, str(tmp_path / "clone"), env=git_env, check=True)
    return tmp_path / "clone"


async def push_steps(clone: Path, steps: list[Step], env: dict[str, str]) -> str:
    for step in steps:
        apply(clone, step)
    await agit(clone, "add", "-A", env=env, check=True)
    await agit(clone, "commit", "-qm", f"{len(steps)} tree changes", env=env, check=True)
    result = await agit(clone, "push", "-q", "origin", "main", env=env)
    assert result.returncode == 0, result.stderr
    return (await agit(clone, "rev-parse", "HEAD", env=env, check=True)).stdout.strip()


CASES: dict[str, list[list[Step]]] = {
    # (a file where the workspace reads a folder, e.g. contexts/company, is refused instead:
    # tests/compat/test_push_file_kinds.py)
    "folder-to-file": [
        [("write", "docs/company/about.md", "about\n", False)],
        [("rm", "docs/company"), ("write", "docs/company", "a file\n", False)],
    ],
    "file-to-folder": [
        [("write", "notes.md", "# notes\n", False)],
        [("write", "notes.md/inner/deep.md", "# deep\n", False)],
    ],
    "deep-folder-to-file-and-back": [
        [("write", "prop/a/b/c/d.txt", "d\n", False), ("write", "prop/a/x.txt", "x\n", True)],
        [("write", "prop/a", "a is a file\n", False)],
        [("write", "prop/a/b/c", "c is a file\n", True)],
        [("write", "prop/a/b", "b is a file\n", False)],
    ],
    "executable-bit": [
        [("chmod", "workers/word-count/run.py", True)],
        [
            ("chmod", "workers/word-count/run.py", False),
            ("write", "prop/tool.sh", "#!/bin/sh\n", True),
        ],
        [("chmod", "prop/tool.sh", False)],
    ],
    "delete-whole-trees": [[("rm", "contexts")], [("rm", "workers/research-brief")]],
    "renames": [
        [("mv", "contexts/company", "contexts/firm/nested")],
        [("mv", "workspace.md", "docs/workspace.md")],
    ],
    "case-only-renames": [
        [("mv", "contexts/company/about.md", "contexts/company/About.md")],
        [("mv", "contexts/company", "contexts/Company")],
        [("mv", "contexts/Company", "contexts/company")],
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_push_tree_change_syncs_worktree_exactly(server, clone, git_env, case):
    ws = server.app[MANAGER].get("default")
    for steps in CASES[case]:
        sha = await push_steps(clone, steps, git_env)
        assert git(ws.path, "rev-parse", "main").strip() == sha
        worktree_equals_main(ws.path)


async def test_push_folder_to_file_workspace_keeps_serving_and_restarts(server, clone, git_env,
                                                                        settings):
    ws = server.app[MANAGER].get("default")
    for steps in CASES["folder-to-file"]:
        await push_steps(clone, steps, git_env)
    assert (ws.path / "docs/company").read_text() == "a file\n"
    # Later writes of that workspace go through, and the server starts again on that data.
    result = await ws.writer.write(
        lambda r: Changeset({"workspace.md": b"# after\n"}, "after"), signature("a", "a@x"))
    assert result.sha is not None
    worktree_equals_main(ws.path)
    await server.close()
    manager = WorkspaceManager(settings)
    await asyncio.to_thread(manager.open_all)
    assert manager.ids() == ["default"]


async def test_push_never_overwrites_edit_saved_while_it_lands(server, clone, git_env, settings):
    """A person saves workspace.md after the server checked the push (and listed the unsynced
    edits) and before the working tree is written (a wrapper of the real pre-receive hook saves
    it once the server has answered): the push lands, the person's file stays, and the next
    sync commits it on top."""
    ws = server.app[MANAGER].get("default")
    hook = settings.system_dir / "hooks" / "pre-receive"
    real = hook.with_name("pre-receive.real")
    hook.rename(real)
    edit = "# saved by a person while the push was received\n"
    hook.write_text(f"#!/bin/sh\n'{real}' || exit $?\n"
                    f"printf '%s' '{edit}' > '{ws.path}/workspace.md'\n")
    hook.chmod(0o755)
    pushed = await push_steps(clone, [("write", "workspace.md", "# pushed\n", False)], git_env)
    assert git(ws.path, "rev-parse", "main").strip() == pushed
    assert (ws.path / "workspace.md").read_text() == edit  # never overwritten
    assert git(ws.path, "status", "--porcelain").split() == ["M", "workspace.md"]
    result = await sync.reconcile(ws)
    assert result.committed == ["workspace.md"]
    history = git(ws.path, "log", "--format=%H", "-2", "--", "workspace.md").split()
    assert [git(ws.path, "show", f"{sha}:workspace.md") for sha in history] == [edit, "# pushed\n"]
    worktree_equals_main(ws.path)

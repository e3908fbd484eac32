"""Push checks cover every object a push makes reachable (tags of trees, blobs and tags
included), a total size limit refuses big pushes with a `remote:` message, and the pack upload
never holds the workspace writer lock. The real git client against the real server."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from floom_git.config import Settings
from floom_git.http.keys import MANAGER
from floom_git.storage.repo import Changeset, signature
from tests.compat.test_git_http import Git
from tests.conftest import AUTH, SECRET, git

MAX_FILE = 64 * 1024
MAX_PUSH = 256 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(max_file_bytes=MAX_FILE, push_max_bytes=MAX_PUSH)


@pytest.fixture
def gitc(server, git_env, tmp_path) -> Git:
    return Git(server, git_env, tmp_path)


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{SECRET}".encode()).decode()}


async def object_id(gitc: Git, repo: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=str(repo), env=gitc.env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate(stdin)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def bad_tree(gitc: Git, repo: Path) -> str:
    """A tree holding a secret-bearing file, on no branch."""
    blob = await object_id(gitc, repo, "hash-object", "-w", "--stdin", stdin=b"KEY=sk-1\n")
    return await object_id(gitc, repo, "mktree", stdin=f"100644 blob {blob}\t.env\n".encode())


@pytest.mark.parametrize("kind", ["tree", "blob", "annotated-tree", "tag-of-tag-of-blob"])
async def test_push_tag_not_pointing_at_commit_refused(gitc, kind):
    repo = await gitc.clone()
    before = git(gitc.ws_path, "for-each-ref")
    tree = await bad_tree(gitc, repo)
    blob = await object_id(gitc, repo, "hash-object", "-w", "--stdin", stdin=b"x" * 1000)
    if kind == "tree":
        await gitc("tag", "sneaky", tree, cwd=repo)
    elif kind == "blob":
        await gitc("tag", "sneaky", blob, cwd=repo)
    elif kind == "annotated-tree":
        await gitc("tag", "-a", "-m", "a tree", "sneaky", tree, cwd=repo)
    else:
        await gitc("tag", "-a", "-m", "inner", "inner", blob, cwd=repo)
        await gitc("tag", "-a", "-m", "outer", "sneaky", "inner", cwd=repo)
    result = await gitc("push", "origin", "refs/tags/sneaky", cwd=repo, check=False)
    assert result.code != 0
    assert "remote:   - refs/tags/sneaky: points to a" in result.err
    assert "only commits" in result.err
    assert git(gitc.ws_path, "for-each-ref") == before


async def test_push_annotated_tag_of_commit_checks_its_commits(gitc):
    repo = await gitc.clone()
    await gitc.commit(repo, {"notes/.env": "KEY=sk-1\n"})
    await gitc("tag", "-a", "-m", "release", "v1", cwd=repo)
    await gitc("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    result = await gitc("push", "origin", "refs/tags/v1", cwd=repo, check=False)
    assert result.code != 0 and "remote:   - notes/.env: secret-bearing files" in result.err
    assert "v1" not in git(gitc.ws_path, "tag")


async def test_push_annotated_tag_of_valid_commit_accepted(gitc):
    repo = await gitc.clone()
    await gitc("tag", "-a", "-m", "release", "v1", cwd=repo)
    await gitc("push", "-q", "origin", "refs/tags/v1", cwd=repo)
    assert git(gitc.ws_path, "rev-parse", "v1^{commit}") == git(gitc.ws_path, "rev-parse", "main")


async def test_push_over_total_size_limit_refused_with_remote_message(gitc):
    repo = await gitc.clone()
    files = {f"big/f{i}.bin": os.urandom(MAX_FILE - 1024) for i in range(6)}  # each file fits
    await gitc.commit(repo, files)
    before = git(gitc.ws_path, "for-each-ref")
    result = await gitc("push", "origin", "main", cwd=repo, check=False)
    assert result.code != 0
    assert f"remote: push rejected: the push is larger than {MAX_PUSH} bytes" in result.err
    assert "[remote rejected] main -> main" in result.err
    assert git(gitc.ws_path, "for-each-ref") == before
    assert not list((gitc.ws_path / ".git" / "objects").glob("*incoming-*"))  # nothing kept


def receive_pack_request(repo: Path, old: str, new: str, env: dict[str, str]) -> bytes:
    """What `git push` sends: one command pkt-line with capabilities, a flush, then the pack."""
    line = f"{old} {new} refs/heads/main\0 report-status side-band-64k agent=test\n".encode()
    pack = subprocess.run(["git", "-C", str(repo), "pack-objects", "--stdout", "--revs"],
                          input=f"{new}\n^{old}\n".encode(), capture_output=True, env=env,
                          check=True).stdout
    return f"{len(line) + 4:04x}".encode() + line + b"0000" + pack


async def trickle(server, body: bytes, seconds: float) -> bytes:
    """POST a receive-pack request whose body arrives in pieces over `seconds`."""
    async def pieces():
        step = max(1, len(body) // 20)
        for start in range(0, len(body), step):
            yield body[start:start + step]
            await asyncio.sleep(seconds / 20)

    async with aiohttp.ClientSession() as s, s.post(
        f"http://127.0.0.1:{server.port}/git/default.git/git-receive-pack", data=pieces(),
        headers={"Content-Type": "application/x-git-receive-pack-request", **basic()},
    ) as resp:
        assert resp.status == 200
        return await resp.read()


async def test_slow_pack_upload_does_not_block_api_writes(gitc, server):
    repo = await gitc.clone()
    old = git(gitc.ws_path, "rev-parse", "main").strip()
    new = await gitc.commit(repo, {"notes/slow.md": "pushed slowly\n"})
    body = receive_pack_request(repo, old, new, gitc.env)
    upload = asyncio.create_task(trickle(server, body, 3.0))
    await asyncio.sleep(0.3)  # the upload has begun
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=AUTH) as s:
        for i in range(3):
            async with s.put(f"http://127.0.0.1:{server.port}/contexts/company/files/w{i}.md",
                             data=b"written meanwhile\n") as resp:
                assert resp.status == 200, await resp.text()
    assert not upload.done(), "the API writes waited for the upload"
    assert time.monotonic() - started < 2.5
    answer = await upload
    # main moved meanwhile, so the push is refused as a whole; nothing was lost or overwritten.
    assert b"ng refs/heads/main" in answer and b"changed on the server while you pushed" in answer
    tree = git(gitc.ws_path, "ls-tree", "-r", "--name-only", "main").split()
    assert {f"contexts/company/w{i}.md" for i in range(3)} <= set(tree)


async def test_slow_pack_upload_lands_when_nothing_else_moved(gitc, server):
    repo = await gitc.clone()
    old = git(gitc.ws_path, "rev-parse", "main").strip()
    new = await gitc.commit(repo, {"notes/slow.md": "pushed slowly\n"})
    ws = server.app[MANAGER].get("default")
    upload = asyncio.create_task(
        trickle(server, receive_pack_request(repo, old, new, gitc.env), 1.5)
    )
    await asyncio.sleep(0.3)
    assert not ws.writer._lock.locked()  # receiving the pack holds no lock
    answer = await upload
    assert b"ok refs/heads/main" in answer
    assert git(gitc.ws_path, "rev-parse", "main").strip() == new
    assert (gitc.ws_path / "notes/slow.md").read_text() == "pushed slowly\n"
    assert git(gitc.ws_path, "status", "--porcelain") == ""
    result = await ws.writer.write(lambda r: Changeset({"after.md": b"a\n"}, "after"),
                                   signature("a", "a@x"))
    assert result.sha is not None

"""Issues travel through git: the real `git` client clones, edits and pushes issue files to the
real server, and the API shows what was pushed; a pushed issue file that does not parse is
refused with a message naming it."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from floom_git.http.keys import MANAGER
from tests.conftest import AUTH, SECRET, git

DEADLINE = 20.0


async def run_git(
    env: dict[str, str], *args: str, cwd: Path, check: bool = True
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("git", *args, cwd=str(cwd), env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    if check and proc.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {err.decode()}")
    return proc.returncode or 0, out.decode() + err.decode()


async def api(server, method: str, path: str, **kw) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{server.port}{path}"
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.request(method, url, **kw) as resp,
    ):
        return resp.status, await resp.json()


async def eventually(check, what: str) -> None:
    """Poll `check` (an async predicate) until it holds; fail only after a generous deadline."""
    end = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def _clone(server, env, tmp_path: Path) -> Path:
    url = f"http://anyone:{SECRET}@127.0.0.1:{server.port}/git/default.git"
    await run_git(env, "clone", "-q", url, "c", cwd=tmp_path)
    return tmp_path / "c"


async def test_push_edited_issue_shows_in_api(server, git_env, tmp_path):
    status, _ = await api(
        server, "POST", "/api/workspace/issues", json={"title": "from api", "body": "b"}
    )
    assert status == 201
    repo = await _clone(server, git_env, tmp_path)
    path = repo / ".floom/issues/ISSUE-0001.md"
    text = path.read_text()
    assert "title: from api\n" in text
    path.write_text(text.replace("status: open", "status: closed").replace("title: from api",
                                                                          "title: closed in git"))
    (repo / ".floom/issues/ISSUE-0002.md").write_text(
        "---\nid: ISSUE-0002\nstatus: open\ntitle: written by hand\nlabels:\n- git\n"
        "custom: kept\n---\n\nFrom a clone.\n")
    await run_git(git_env, "add", ".floom/issues", cwd=repo)
    await run_git(git_env, "commit", "-qm", "issues: edit in a clone", cwd=repo)
    await run_git(git_env, "push", "-q", "origin", "main", cwd=repo)

    async def visible() -> bool:
        status, body = await api(server, "GET", "/api/workspace/issues")
        return status == 200 and [(i["id"], i["status"], i["title"]) for i in body["issues"]] == [
            ("ISSUE-0001", "closed", "closed in git"), ("ISSUE-0002", "open", "written by hand")]

    await eventually(visible, "pushed issues in the API")
    # The next API write builds on the pushed files and keeps their unknown keys.
    status, _ = await api(server, "POST", "/api/workspace/issues/ISSUE-0002/comments",
                          json={"body": "seen"})
    assert status == 201
    ws_path = server.app[MANAGER].get("default").path
    assert "custom: kept\n" in (ws_path / ".floom/issues/ISSUE-0002.md").read_text()
    status, created = await api(server, "POST", "/api/workspace/issues", json={"title": "next"})
    assert created["id"] == "ISSUE-0003"
    await run_git(git_env, "pull", "-q", "origin", "main", cwd=repo)
    assert (repo / ".floom/issues/ISSUE-0003.md").is_file()
    assert (repo / ".floom/issues/ISSUE-0002.comments.ndjson").is_file()


@pytest.mark.parametrize("name,content,message", [
    ("ISSUE-0001.md", "---\nid: ISSUE-0001\nstatus: done\ntitle: x\n---\n", "$.status"),
    ("ISSUE-0001.md", "no front matter at all\n", "front matter"),
    ("ISSUE-0001.md", "---\nid: ISSUE-0009\ntitle: x\n---\n", "does not match"),
])
async def test_push_unparseable_issue_is_refused_with_message(server, git_env, tmp_path, name,
                                                              content, message):
    ws_path = server.app[MANAGER].get("default").path
    before = git(ws_path, "rev-parse", "main").strip()
    repo = await _clone(server, git_env, tmp_path)
    (repo / ".floom/issues").mkdir(parents=True)
    (repo / ".floom/issues" / name).write_text(content)
    await run_git(git_env, "add", ".floom/issues", cwd=repo)
    await run_git(git_env, "commit", "-qm", "bad issue", cwd=repo)
    code, output = await run_git(git_env, "push", "origin", "main", cwd=repo, check=False)
    assert code != 0
    assert "remote:" in output and f".floom/issues/{name}" in output and message in output
    assert git(ws_path, "rev-parse", "main").strip() == before
    status, body = await api(server, "GET", "/api/workspace/issues")
    assert status == 200 and body["issues"] == [] and body["errors"] == []

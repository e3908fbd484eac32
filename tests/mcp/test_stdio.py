"""`floom-git mcp --workspace W` over stdio, spawned by the official SDK's stdio client the way a
desktop client launches it, authenticated by FLOOM_TOKEN against a real server on a port."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from floom_git.schemas.tools import BUILTIN_TOOL_NAMES
from tests.conftest import add_member
from tests.mcp.conftest import payload


def params(client, tmp_path: Path, token: str | None, workspace: str = "default",
           url: str | None = None) -> StdioServerParameters:
    env = {"FLOOM_URL": url or str(client.make_url("")), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": os.getcwd()}
    if token is not None:
        env["FLOOM_TOKEN"] = token
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "floom_git", "mcp", "--workspace", workspace], env=env)


async def test_stdio_serves_the_same_tools_with_progress(client, tmp_path):
    _, headers = add_member(client.server.app, "default", "member", "desk")
    await client.post("/api/mcp-tools", json={"name": "count_words", "worker_id": "word-count"})
    progress: list[str | None] = []

    async def on_progress(done, total, message):
        progress.append(message)

    async with stdio_client(params(client, tmp_path, headers["x-floom-token"])) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "floom-git"
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == set(BUILTIN_TOOL_NAMES) | {"count_words"}
            result = await session.call_tool("run_worker", {"worker_id": "word-count",
                                                            "inputs": {"text": "a b"}},
                                             progress_callback=on_progress)
            assert not result.is_error and payload(result)["outputs"]["words"] == 2
            assert "status: completed" in progress and "[info] counted 2 words" in progress
            tool = await session.call_tool("count_words", {"text": "x y z"})
            assert tool.structured_content == {"words": 3, "lines": 1, "longest": "x"}
    runs = await (await client.get("/api/runs")).json()
    assert {r["trigger_source"] for r in runs} == {"mcp"} and len(runs) == 2


async def test_stdio_viewer_cannot_create_workers_or_trigger_runs(client, tmp_path):
    _, headers = add_member(client.server.app, "default", "viewer", "desk-viewer")
    async with stdio_client(params(client, tmp_path, headers["x-floom-token"])) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = payload(await session.call_tool("list_workers", {}))
            assert listed["total"] == 2
            for name, args in (("run_worker", {"worker_id": "word-count", "inputs": {"text": "x"}}),
                               ("save_worker", {"worker_yml": "name: x"})):
                refused = await session.call_tool(name, args)
                assert refused.is_error and payload(refused)["code"] == "forbidden"


async def _cli(
    client, tmp_path: Path, token: str | None, url: str | None = None
) -> tuple[int, str]:
    p = params(client, tmp_path, token, url=url)
    proc = await asyncio.create_subprocess_exec(
        p.command, *p.args, env={**{k: v for k, v in os.environ.items() if k != "FLOOM_TOKEN"},
                                 **(p.env or {})}, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out == b""  # stdout carries MCP messages only
    return proc.returncode or 0, err.decode()


async def test_stdio_without_token_or_with_a_bad_one_exits_with_an_error(client, tmp_path):
    code, err = await _cli(client, tmp_path, None)
    assert code == 1 and "no token: set FLOOM_TOKEN" in err
    code, err = await _cli(client, tmp_path, "floom_not-a-real-token")
    assert code == 1 and "HTTP 401 (check FLOOM_TOKEN and the workspace)" in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, err = await _cli(client, tmp_path, "floom_any", url=closed)
    assert code == 1 and f"cannot open the MCP session at {closed}/mcp: " in err

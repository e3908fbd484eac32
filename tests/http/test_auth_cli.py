"""The bootstrap path a person follows: `floom-git user add` and `floom-git token create` as real
subprocesses on a data dir, then the server on that data dir, then the real git client cloning
and pushing with the token as the password."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from floom_git.http import openapi
from floom_git.http.app import create_app
from tests.conftest import WORKER_YML, git

PASSWORD = "correct horse battery staple"


def floom(settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FLOOM_DATA_DIR": str(settings.data_dir),
        "FLOOM_ARGON2_PROFILE": "CHEAPEST",
    }
    return subprocess.run([sys.executable, "-m", "floom_git", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def _serve(aiohttp_server, settings) -> TestServer:
    return await aiohttp_server(create_app(settings))


async def test_cli_user_and_token_work_against_the_server(aiohttp_server, aiohttp_client, settings):
    server = await _serve(aiohttp_server, settings)  # creates workspace default
    added = floom(settings, "user", "add", "root", "--email", "root@example.com", "--admin")
    assert added.returncode == 0, added.stderr
    generated = added.stdout.strip().removeprefix("password: ")
    assert len(generated) >= 12
    made = floom(settings, "user", "add", "alice", "--password-stdin", "--workspace", "default",
                 "--role", "viewer", stdin=PASSWORD + "\n")
    assert made.returncode == 0 and made.stdout == "", made.stderr
    token = floom(settings, "token", "create", "--user", "alice", "--name", "laptop",
                  "--expires-days", "7").stdout.strip()
    assert token.startswith("floom_")
    client = await aiohttp_client(server)
    resp = await client.get("/api/auth/me", headers={"x-floom-token": token})
    me = await resp.json()
    assert (me["user"]["username"], me["role"]) == ("alice", "viewer")
    assert (
        await client.post("/api/workers/reload", headers={"x-floom-token": token})
    ).status == 403
    login = await client.post("/auth/login", json={"username": "root", "password": generated})
    assert login.status == 200 and (await login.json())["role"] == "owner"
    login = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status == 200
    listing = floom(settings, "user", "list")
    assert "alice" in listing.stdout and "root@example.com" in listing.stdout
    token_id = (await (await client.get("/auth/tokens", headers={"x-floom-token": token})).json())[
        0
    ]["id"]
    assert floom(settings, "token", "revoke", token_id).returncode == 0
    # another process revoked it: the server's read cache lets it go within seconds
    deadline = time.monotonic() + 20
    while (await client.get("/api/auth/me", headers={"x-floom-token": token})).status != 401:
        assert time.monotonic() < deadline, "a token revoked with the CLI still works"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("args,message", [
    (("user", "add", "Bad Name"), "username"),
    (("user", "add", "bob", "--workspace", "nope"), "does not exist"),
    (("token", "create", "--user", "nobody"), "not found"),
])
def test_cli_bad_input_exits_1(settings, args, message):
    result = floom(settings, *args)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_cli_workspace_token_needs_membership(settings):
    (settings.workspaces_dir / "default" / ".git").mkdir(parents=True)
    floom(settings, "user", "add", "alice", "--workspace", "default", "--role", "member")
    result = floom(settings, "token", "create", "--user", "alice", "--workspace", "default",
                   "--role", "admin")
    assert result.returncode == 1 and "cannot mint a admin token" in result.stderr
    result = floom(settings, "token", "create", "--user", "alice", "--workspace", "default")
    assert result.returncode == 0 and result.stdout.startswith("floom_")


def _git_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp),
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


async def test_git_clone_and_push_follow_the_token_role(aiohttp_server, settings, tmp_path):
    app = create_app(settings)
    if not any(r.perm == "git" for r in app[openapi.ROUTES_KEY]):
        pytest.skip("git over HTTP is not wired in")
    server = await aiohttp_server(app)
    floom(settings, "user", "add", "vera", "--workspace", "default", "--role", "viewer")
    floom(settings, "user", "add", "max", "--workspace", "default", "--role", "member")
    viewer = floom(settings, "token", "create", "--user", "vera").stdout.strip()
    member = floom(settings, "token", "create", "--user", "max").stdout.strip()
    env = _git_env(tmp_path)

    def url(token: str) -> str:
        return f"http://x:{token}@127.0.0.1:{server.port}/git/default.git"

    async def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        # in a thread: the server answering git runs on this event loop
        return await asyncio.to_thread(subprocess.run, ["git", *args], cwd=cwd, env=env,
                                       capture_output=True, text=True, timeout=60)

    assert (await run("clone", url("floom_" + "x" * 43), str(tmp_path / "bad"))).returncode != 0
    clone = tmp_path / "clone"
    result = await run("clone", url(viewer), str(clone))
    assert result.returncode == 0, result.stderr
    worker = clone / "workers" / "from-git"
    worker.mkdir(parents=True)
    (worker / "worker.yml").write_text(WORKER_YML.format(name="from-git", title="From git"))
    (worker / "run.py").write_text("print('hi')\n")
    await run("add", "-A", cwd=clone)
    await run("commit", "-qm", "add a worker", cwd=clone)
    refused = await run("push", "origin", "HEAD:main", cwd=clone)
    assert refused.returncode != 0 and "403" in refused.stderr
    await run("remote", "set-url", "origin", url(member), cwd=clone)
    pushed = await run("push", "origin", "HEAD:main", cwd=clone)
    assert pushed.returncode == 0, pushed.stderr
    assert "from-git" in git(
        settings.workspaces_dir / "default", "ls-tree", "--name-only", "main:workers"
    )

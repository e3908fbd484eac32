"""The pre-receive hook is a tiny client of the server's push validator (a Unix socket in the data
directory): it starts without pygit2, yaml or msgspec, and it refuses the push, saying why,
whenever the server cannot answer. The real git client against the real server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.hooks import pre_receive
from floom_git.http.git_http import TRANSPORT
from tests.compat.test_git_http import Git
from tests.conftest import git

HEAVY = ("pygit2", "yaml", "msgspec", "floom_git", "aiohttp")


@pytest.fixture
def gitc(server, git_env, tmp_path) -> Git:
    return Git(server, git_env, tmp_path)


def test_hook_starts_without_the_heavy_modules_and_fails_closed_alone():
    """Run as git runs it, with no validator named: it refuses, and imported nothing heavy."""
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-X", "importtime", pre_receive.__file__],
        input=b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\n", capture_output=True,
        env={"PATH": os.environ["PATH"]}, check=False)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "push rejected: the server could not check this push" in err
    imported = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines()
                if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, imported


async def test_push_refused_with_remote_message_when_validator_is_down(gitc, server):
    transport = server.app[TRANSPORT]
    repo = await gitc.clone()
    before = git(gitc.ws_path, "for-each-ref")
    await gitc.commit(repo, {"workspace.md": "# while the validator is down\n"})
    await transport.hook_server.stop()
    try:
        result = await gitc("push", "origin", "main", cwd=repo, check=False)
    finally:
        await transport.hook_server.start()
    assert result.code != 0
    assert "remote: push rejected: the server could not check this push" in result.err
    assert "(pre-receive hook declined)" in result.err
    assert git(gitc.ws_path, "for-each-ref") == before
    assert git(gitc.ws_path, "status", "--porcelain") == ""
    await gitc("push", "-q", "origin", "main", cwd=repo)  # answered again: it lands
    assert git(gitc.ws_path, "show", "main:workspace.md") == "# while the validator is down\n"


async def ask(server, data: bytes) -> bytes:
    path = server.app[TRANSPORT].hook_server.path
    return await asyncio.to_thread(pre_receive.ask, str(path), data)


@pytest.mark.parametrize("data", [
    pre_receive.request("no-such-push", "", b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\n"),
    b"hello\n\n",
    b"",
])
async def test_validator_refuses_what_is_no_push_of_its_own(server, data, monkeypatch):
    monkeypatch.chdir(Path.cwd())  # ask() changes into the socket's folder
    answer = await ask(server, data)
    verdict, _, text = answer.partition(b"\n")
    assert verdict == b"refused" and b"push rejected" in text


@pytest.fixture
def long_settings(tmp_path: Path, settings: Settings) -> Settings:
    deep = tmp_path / ("a-data-directory-with-a-long-name-" * 3) / "data"
    return settings.replace(data_dir=deep)


async def test_push_lands_when_the_socket_path_is_longer_than_an_address(
        aiohttp_server, long_settings, git_env, tmp_path):
    from floom_git.http.app import create_app

    server = await aiohttp_server(create_app(long_settings))
    assert len(str(server.app[TRANSPORT].hook_server.path)) > 108
    gitc = Git(server, git_env, tmp_path)
    repo = await gitc.clone()
    sha = await gitc.commit(repo, {"workspace.md": "# deep\n"})
    await gitc("push", "-q", "origin", "main", cwd=repo)
    assert gitc.server_main() == sha

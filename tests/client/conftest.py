"""The real CLI against the real server on a port: `cli(...)` runs `floom_git.cli.main` in a
thread (the server keeps serving on the test's loop) with its own environment, standard
streams and config directory; `floom_subprocess` runs it as a separate process."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from floom_git.cli import main
from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY
from tests.conftest import uid

PASSWORD = "correct horse battery staple"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Call the CLI like a person would type it; `env` is the whole environment it sees."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __call__(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> Result:
        task, _ = self.start(*args, stdin=stdin, env=env)
        return await task

    def start(self, *args: str, stdin: str = "", env: dict[str, str] | None = None,
              ) -> tuple[asyncio.Task[Result], io.StringIO]:
        """The command running in the background, and its stderr as it is being written."""
        out, err = io.StringIO(), io.StringIO()
        environ = {**self.env, **(env or {})}

        def call() -> int:
            try:
                return main(
                    list(args), environ=environ, stdin=io.StringIO(stdin), stdout=out, stderr=err
                )
            except SystemExit as exc:  # argparse refusing the command line
                return int(exc.code or 0)

        async def run() -> Result:
            code = await asyncio.to_thread(call)
            return Result(code, out.getvalue(), err.getvalue())

        return asyncio.ensure_future(run()), err


@pytest.fixture
async def server(aiohttp_server, settings) -> TestServer:
    return await aiohttp_server(create_app(settings))


@pytest.fixture
def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "xdg-config"


def member_token(server: TestServer, username: str, role: str = "member") -> str:
    """A user with a password and `role` in `default`; returns a personal token of theirs."""
    identity = server.app[IDENTITY]
    user = identity.users.create(username, email=f"{username}@example.com", password=PASSWORD)
    identity.members.add(uid(server.app, "default"), user.id, role)
    value, _ = identity.tokens.mint(user_id=user.id, kind="personal", name="test")
    return value


@pytest.fixture
def ada(server: TestServer) -> str:
    return member_token(server, "ada")


@pytest.fixture
def base_env(tmp_path: Path, url: str, config_home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"),
            "XDG_CONFIG_HOME": str(config_home), "FLOOM_URL": url}


@pytest.fixture
def anon_cli(base_env: dict[str, str]) -> Cli:
    """The CLI with no stored sign-in and no FLOOM_TOKEN."""
    return Cli(base_env)


@pytest.fixture
def cli(base_env: dict[str, str], ada: str) -> Cli:
    """The CLI acting as ada through FLOOM_TOKEN."""
    return Cli({**base_env, "FLOOM_TOKEN": ada})


async def floom_subprocess(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "floom_git",
        *args,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

"""Shared fixtures: a real server on a port over a real data dir in tmp_path."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from floom_git.config import Settings
from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, MANAGER
from tests.fakes.llm_server import FakeLLM

SECRET = "test-secret-0123456789"  # at least 16 characters, as the server demands
AUTH = {"x-floom-secret": SECRET}


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """The fake LLM server (OpenAI and Anthropic wire protocols) on a loopback port."""
    server = await FakeLLM().start()
    yield server
    await server.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Rate limits off and the cheapest argon2 profile: tests exercise those on purpose only.
    return Settings(data_dir=tmp_path / "data", secret=SECRET, watch=False,
                    argon2_profile="CHEAPEST", rate_list_per_minute=0, rate_auth_per_minute=0,
                    rate_login_per_minute=0, rate_auth_fail_per_minute=0)


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> TestClient:
    app = create_app(settings)
    return await aiohttp_client(app, headers=AUTH)


@pytest.fixture
async def anon(aiohttp_client, settings: Settings) -> TestClient:
    """A client of a real server that sends no credential; each request brings its own."""
    return await aiohttp_client(create_app(settings))


def uid(app: web.Application, ws_id: str) -> str:
    """The internal id of open workspace `ws_id`: memberships and tokens are keyed by it."""
    return app[MANAGER].get(ws_id).uid


def add_member(app: web.Application, ws_id: str, role: str | None, username: str,
               *, admin: bool = False) -> tuple[str, dict[str, str]]:
    """A user (email <username>@example.com) with `role` in `ws_id` (none if None) and a personal
    token: (user id, headers that authenticate as them)."""
    identity = app[IDENTITY]
    user = identity.users.create(username, email=f"{username}@example.com", is_admin=admin)
    if role is not None:
        identity.members.add(uid(app, ws_id), user.id, role)
    value, _ = identity.tokens.mint(user_id=user.id, kind="personal", name="test")
    return user.id, {"x-floom-token": value}


@pytest.fixture
def ws_path(settings: Settings) -> Path:
    return settings.workspaces_dir / "default"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "main").strip())


WORKER_YML = """schema_version: "0.3"
name: {name}
title: {title}
description: A test worker.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: text
      type: string
      required: true
example_input:
  text: hello
"""


def worker_body(
    name: str = "hello-world", title: str = "Hello", run_py: str = "print('hi')\n"
) -> dict:
    return {"worker_yml": WORKER_YML.format(name=name, title=title), "run_py": run_py}

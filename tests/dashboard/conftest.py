"""The dashboard against the real server on a port: a signed-in browser session for aiohttp's
client (`signed_in`), and a real headless Chromium driven by Playwright (`browser`), skipped with
the reason when no browser is installed. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, MANAGER

PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def member_key(server: TestServer, ws_id: str) -> str:
    """The key memberships are stored under: the workspace's internal id where it has one."""
    ws = server.app[MANAGER].get(ws_id)
    return getattr(ws, "uid", ws.id)


def make_user(server: TestServer, username: str, role: str | None = "owner", *,
              admin: bool = False) -> tuple[str, str]:
    """A user with a password and `role` in `default` (none if None): (user id, personal token)."""
    identity = server.app[IDENTITY]
    user = identity.users.create(username, email=f"{username}@example.com", password=PASSWORD,
                                 is_admin=admin)
    if role is not None:
        identity.members.add(member_key(server, "default"), user.id, role)
    token, _ = identity.tokens.mint(user_id=user.id, kind="personal", name="test")
    return user.id, token


@pytest.fixture
async def server(aiohttp_server, settings) -> TestServer:
    return await aiohttp_server(create_app(settings))


@pytest.fixture
def origin(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def sign_in(client: TestClient, username: str, origin: str) -> None:
    resp = await client.post("/ui/login", data={"username": username, "password": PASSWORD,
                                                "next": "/ui/"},
                             headers={"Origin": origin}, allow_redirects=False)
    assert resp.status == 303, await resp.text()


@pytest.fixture
async def visitor(aiohttp_client, server: TestServer) -> TestClient:
    """A browser-like client of `server` that has not signed in."""
    return await aiohttp_client(server)


@pytest.fixture
async def signed_in(aiohttp_client, server: TestServer, origin: str) -> TestClient:
    """A browser-like client signed in as ada (owner of `default`) through the sign-in form;
    its form posts carry this server's Origin, as a browser's do."""
    make_user(server, "ada")
    client = await aiohttp_client(server)
    await sign_in(client, "ada", origin)
    return client


@pytest.fixture
def api_headers(server: TestServer) -> dict[str, str]:
    """A token of a second owner, for checking through the REST API what the pages did."""
    _, token = make_user(server, "api-checker")
    return {"x-floom-token": token}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium browser installed (Debian: apt-get install chromium; "
                    "scripts/install does it)")
    playwright_api = pytest.importorskip("playwright.async_api",
                                         reason="the playwright package is not installed")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Any, name: str) -> Path:
    """A full-page screenshot of what the browser shows, kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path

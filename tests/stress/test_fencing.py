"""One workspace can never stop the server: a workspace whose repository cannot be opened or
recovered at start-up is fenced (logged, reported in /health/details, 503 with a clear detail on
its own routes including git) while every other workspace serves."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import aiohttp
import pytest

from floom_git.config import Settings
from floom_git.http.app import create_app
from floom_git.services.workspaces import WorkspaceManager
from floom_git.storage.repo import JOURNAL
from tests.conftest import AUTH, SECRET

OTHER = {**AUTH, "x-workeros-workspace": "other"}


def break_recovery(ws_path: Path) -> None:
    """A working-tree sync cut short, over an index that no longer reads."""
    (ws_path / ".git" / JOURNAL).write_text('{"from": null, "files": ["workspace.md"]}')
    (ws_path / ".git" / "index").write_bytes(b"DIRC garbage, not an index")


def break_opening(ws_path: Path) -> None:
    (ws_path / ".git" / "HEAD").write_bytes(b"\x00\x01 not a ref")
    (ws_path / ".git" / "objects").rename(ws_path / ".git" / "objects-gone")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(shared_secret_role="admin")


@pytest.mark.parametrize("breaker", [break_recovery, break_opening])
async def test_workspace_failing_recovery_is_fenced_others_serve(aiohttp_server, settings, caplog,
                                                                  breaker):
    manager = WorkspaceManager(settings)
    manager.create_sync("default")
    manager.create_sync("other")
    breaker(settings.workspaces_dir / "other")
    with caplog.at_level(logging.ERROR):
        server = await aiohttp_server(create_app(settings))  # start-up does not exit
    assert any("other" in r.getMessage() and "fenced" in r.getMessage() for r in caplog.records)
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/workers", headers=AUTH) as resp:
            assert resp.status == 200
        async with s.put(f"{base}/api/workspace", headers=AUTH, json={"content": "# ok\n"}) as resp:
            assert resp.status == 200
        for method, path in (("GET", "/api/workers"), ("PUT", "/api/workspace"),
                             ("GET", "/api/workspace")):
            async with s.request(method, f"{base}{path}", headers=OTHER,
                                 json={"content": "x"}) as resp:
                assert resp.status == 503, path
                detail = (await resp.json())["detail"]
                assert "other" in detail and "unavailable" in detail.lower()
        git_auth = {"Authorization": "Basic " + base64.b64encode(f"x:{SECRET}".encode()).decode()}
        async with s.get(f"{base}/git/other.git/info/refs?service=git-upload-pack",
                         headers=git_auth) as resp:
            assert resp.status == 503
            assert "other" in (await resp.json())["detail"]
        async with s.get(f"{base}/git/default.git/info/refs?service=git-upload-pack",
                         headers=git_auth) as resp:
            assert resp.status == 200
        async with s.get(f"{base}/health/details", headers=AUTH) as resp:
            body = await resp.json()
        assert body["status"] == "degraded"
        other = body["checks"]["repositories"]["workspaces"]["other"]
        assert other["ok"] is False and other["fenced"] is True and other["error"]
        assert body["checks"]["repositories"]["workspaces"]["default"]["ok"] is True
        async with s.get(f"{base}/healthz") as resp:
            assert resp.status == 200


async def test_default_folder_that_is_no_repository_is_fenced(aiohttp_server, settings):
    manager = WorkspaceManager(settings)
    manager.create_sync("other")
    (settings.workspaces_dir / "default").mkdir()  # no .git: not a repository
    (settings.workspaces_dir / "default" / "notes.md").write_text("mine\n")
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/workers", headers=AUTH) as resp:
            assert resp.status == 503
            assert "default" in (await resp.json())["detail"]
        async with s.get(f"{base}/api/workers", headers=OTHER) as resp:
            assert resp.status == 200
    assert (settings.workspaces_dir / "default" / "notes.md").read_text() == "mine\n"

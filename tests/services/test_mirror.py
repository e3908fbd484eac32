"""Remote mirror (WORKEROS_GIT_REMOTE) and GET /health/details, with local bare repositories as
remotes, the real server on a port and the real git client."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.http.app import create_app
from floom_git.http.keys import MIRROR
from floom_git.services.mirror import redact, remote_for
from floom_git.storage.repo import RUNS, Changeset, WorkspaceRepo, signature
from tests.conftest import SECRET, git

ADMIN = {"x-floom-secret": SECRET}
DEADLINE = 20.0


def mirror_settings(tmp_path: Path, remote: str, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        secret=SECRET,
        watch=False,
        shared_secret_role="admin",
        git_remote=remote,
        mirror_retry_seconds=0.05,
        mirror_retry_max_seconds=0.2,
        **extra,
    )  # type: ignore[arg-type]


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(path)], check=True)
    return path


def ref(repo: Path, name: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "-q", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None


async def until(check: Callable[[], object], what: str) -> None:
    """Poll `check` until truthy; fail only after a generous deadline."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened within {DEADLINE:.0f} s: {what}")


@pytest.mark.parametrize(
    ("setting", "ws_id", "expected"),
    [
        (None, "default", None),
        ("/srv/mirror.git", "default", "/srv/mirror.git"),
        ("/srv/mirror.git", "team", None),
        ("/srv/{workspace}.git", "team", "/srv/team.git"),
        (
            "https://git.example.com/org/{workspace}.git",
            "default",
            "https://git.example.com/org/default.git",
        ),
    ],
)
def test_remote_for_workspace_follows_placeholder_rule(setting, ws_id, expected):
    assert remote_for(setting, ws_id) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bot:s3cret@git.example.com/x.git", "https://bot:***@git.example.com/x.git"),
        ("https://git.example.com/x.git", "https://git.example.com/x.git"),
        ("/srv/mirror.git", "/srv/mirror.git"),
    ],
)
def test_redact_remote_masks_password(url, shown):
    assert redact(url) == shown


async def test_push_commits_to_empty_remote(aiohttp_client, tmp_path):
    remote = bare(tmp_path / "remote.git")
    client = await aiohttp_client(create_app(mirror_settings(tmp_path, str(remote))), headers=ADMIN)
    ws = tmp_path / "data" / "workspaces" / "default"
    await until(lambda: ref(remote, "main") == ref(ws, "main"), "seeded main pushed")

    resp = await client.put(
        "/api/contexts/company/files/mirror.md",
        data=b"mirrored\n",
        headers={"content-type": "text/markdown"},
    )
    assert resp.status == 200
    new_main = ref(ws, "main")
    await until(lambda: ref(remote, "main") == new_main, "API commit pushed")
    assert git(remote, "show", "main:contexts/company/mirror.md") == "mirrored\n"

    app_ws = client.server.app[MIRROR].manager.get("default")
    await app_ws.writer.write(
        lambda r: Changeset({"runs/r.json": b"{}"}, "runs: record r"),
        signature("floom", "floom@floom.local"),
        ref=RUNS,
    )
    await until(lambda: ref(remote, "floom/runs") == ref(ws, "floom/runs"), "floom/runs pushed")

    body = await (await client.get("/api/health/details")).json()
    state = body["checks"]["mirror"]["workspaces"]["default"]
    assert body["checks"]["mirror"]["ok"] and state["enabled"]
    assert state["last_ok_at"] and state["last_error"] is None and state["failures"] == 0
    git(remote, "fsck", "--strict")


async def test_create_workspace_clones_from_remote(aiohttp_client, tmp_path):
    sig = signature("origin", "origin@example.com")
    source = WorkspaceRepo.create(
        tmp_path / "source",
        {
            "workspace.yml": b"name: default\n",
            "workspace.md": b"# From the remote\n",
            "contexts/notes/a.md": b"remote note\n",
        },
        "workspace: create default",
        sig,
    )
    source.commit(
        Changeset({"runs/2026-01-01/run_1/run.json": b"{}"}, "runs: record"), sig, ref=RUNS
    )
    remote = bare(tmp_path / "remote.git")
    git(source.path, "push", "-q", str(remote), "main", "floom/runs")

    client = await aiohttp_client(create_app(mirror_settings(tmp_path, str(remote))), headers=ADMIN)
    ws = tmp_path / "data" / "workspaces" / "default"
    assert ref(ws, "main") == ref(remote, "main")
    assert ref(ws, "floom/runs") == ref(remote, "floom/runs")
    assert git(ws, "remote") == ""  # the remote URL (maybe with credentials) is not kept
    assert git(ws, "status", "--porcelain") == ""
    assert git(ws, "config", "receive.denyNonFastForwards").strip() == "true"
    resp = await client.get("/api/workspace")
    assert resp.status == 200 and "From the remote" in await resp.text()


async def test_failing_remote_shows_error_and_server_keeps_working(aiohttp_client, tmp_path):
    missing = tmp_path / "no-such-remote.git"
    client = await aiohttp_client(
        create_app(mirror_settings(tmp_path, str(missing))), headers=ADMIN
    )
    mirror = client.server.app[MIRROR]
    await until(lambda: mirror.states()["default"].failures >= 2, "push retried after failing")

    resp = await client.put(
        "/api/contexts/company/files/still-works.md",
        data=b"ok\n",
        headers={"content-type": "text/markdown"},
    )
    assert resp.status == 200  # a failing mirror never blocks a write
    body = await (await client.get("/api/health/details")).json()
    assert body["status"] == "degraded" and not body["checks"]["mirror"]["ok"]
    state = body["checks"]["mirror"]["workspaces"]["default"]
    assert state["last_error"] and state["last_error_at"] and state["pending"]
    assert state["last_ok_at"] is None

    bare(missing)  # the remote comes back: the next retry pushes everything
    ws = tmp_path / "data" / "workspaces" / "default"
    await until(lambda: ref(missing, "main") == ref(ws, "main"), "pushed once the remote exists")
    await until(lambda: mirror.states()["default"].failures == 0, "state recovered")
    state = mirror.states()["default"]
    assert state.last_error is None and state.last_ok_at and not state.pending


async def test_health_details_without_mirror_reports_disk(aiohttp_client, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        secret=SECRET,
        watch=False,
        shared_secret_role="admin",
        min_free_gb=0.0,
    )
    client = await aiohttp_client(create_app(settings), headers=ADMIN)
    body = await (await client.get("/v1/health/details")).json()
    assert body["status"] == "ok"
    assert body["checks"]["disk"]["ok"] and body["checks"]["disk"]["free_gb"] > 0
    assert body["checks"]["mirror"] == {
        "ok": True,
        "enabled": False,
        "workspaces": {
            "default": {
                "workspace": "default",
                "enabled": False,
                "remote": None,
                "pending": False,
                "pushing": False,
                "last_ok_at": None,
                "last_error": None,
                "last_error_at": None,
                "failures": 0,
                "next_retry_at": None,
                "pushed": {},
            }
        },
    }


async def test_health_details_needs_admin(client):
    resp = await client.get("/api/health/details")  # the conftest secret acts as a member
    assert resp.status == 403
    assert "detail" in await resp.json()

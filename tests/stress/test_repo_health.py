"""The cheap repository and scheduler checks behind GET /health/details."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from floom_git.config import Settings
from floom_git.services import repo_health
from floom_git.services.workspaces import WorkspaceManager
from floom_git.storage.repo import JOURNAL


def manager(tmp_path: Path) -> WorkspaceManager:
    m = WorkspaceManager(Settings(data_dir=tmp_path / "data", secret="s", watch=False))
    m.create_sync("default")
    return m


def test_check_repositories_healthy_workspace_is_ok(tmp_path: Path):
    m = manager(tmp_path)
    result = repo_health.check_repositories(m.all())
    check = result.workspaces["default"]
    assert result.ok and check.ok and len(check.main or "") == 7
    assert check.runs is None and check.locks == [] and not check.sync_pending


def test_check_repo_reports_locks_and_unfinished_sync(tmp_path: Path):
    m = manager(tmp_path)
    ws = m.get("default")
    git_dir = ws.path / ".git"
    (git_dir / "index.lock").write_bytes(b"")
    (git_dir / "refs" / "heads" / "main.lock").write_bytes(b"")
    (git_dir / JOURNAL).write_text(json.dumps({"files": []}))
    check = repo_health.check_repo(ws)
    assert check.ok  # still readable: locks and a pending sync are reported, not fatal
    assert check.locks == ["index.lock", "refs/heads/main.lock"] and check.sync_pending


def test_check_repo_unreadable_main_is_not_ok(tmp_path: Path):
    m = manager(tmp_path)
    ws = m.get("default")
    main = ws.path / ".git" / "refs" / "heads" / "main"
    main.write_text("0" * 40 + "\n")
    check = repo_health.check_repo(ws)
    assert not check.ok and check.error


class FakeScheduler:
    """Only what check_scheduler reads: the loop task and the state per workspace."""

    def __init__(self, task: asyncio.Task | None, state: dict) -> None:
        self._task = task
        self._state = state

    def state(self, ws_id: str) -> dict:
        return self._state


async def test_check_scheduler_reports_loop_and_next_fire(tmp_path: Path):
    m = manager(tmp_path)
    state = {"a#0": {"next_run_at": "2030-01-02T00:00:00.000Z"},
             "b#0": {"next_run_at": "2030-01-01T00:00:00.000Z"}, "c#0": {"error": "bad cron"}}
    task = asyncio.get_running_loop().create_task(asyncio.sleep(30))
    try:
        check = repo_health.check_scheduler(FakeScheduler(task, state), True, 30.0, m.all())
    finally:
        task.cancel()
    assert check.ok and check.running
    ws = check.workspaces["default"]
    assert (ws.schedules, ws.next_run_at, ws.errors) == (3, "2030-01-01T00:00:00.000Z", 1)
    stopped = repo_health.check_scheduler(FakeScheduler(None, {}), True, 30.0, m.all())
    assert not stopped.ok and not stopped.running
    assert repo_health.check_scheduler(FakeScheduler(None, {}), False, 30.0, m.all()).ok


async def test_get_health_details_reports_repositories_and_scheduler(client):
    from tests.conftest import add_member

    _, admin = add_member(client.server.app, "default", None, "root", admin=True)
    resp = await client.get("/api/health/details", headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    repos, scheduler = body["checks"]["repositories"], body["checks"]["scheduler"]
    assert repos["ok"] and repos["workspaces"]["default"]["ok"]
    assert len(repos["workspaces"]["default"]["main"]) == 7
    assert scheduler == {"ok": True, "enabled": True, "running": True,
                         "tick_seconds": scheduler["tick_seconds"],
                         "workspaces": {"default": {"schedules": 0, "next_run_at": None,
                                                    "errors": 0}}}
    assert body["status"] == "ok"

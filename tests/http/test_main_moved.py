"""The one "main moved" pipeline: an API commit, a push and a disk sync each end in exactly one
move, one workspace event (with its source) and one worker-registry reload."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from floom_git.http.keys import MANAGER
from floom_git.services.moves import Moved
from floom_git.services.workspaces import Workspace
from tests.conftest import SECRET, git

RUN_PY = "workers/word-count/run.py"


class Seen:
    """What the pipeline of a workspace published since it was made."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.moves: list[Moved] = []
        ws.moves.subscribers.append(self.moves.append)
        self.seq = ws.events.last_seq
        self.reloads = ws.workers.reloads

    def events(self) -> list[tuple[str, dict]]:
        return [(e.type, e.data) for e in self.ws.events.since(self.seq)[0]]

    def reloaded(self) -> int:
        return self.ws.workers.reloads - self.reloads


@pytest.fixture
def ws(client) -> Workspace:
    return client.server.app[MANAGER].get("default")


async def test_main_moved_by_api_commit_announces_once(client, ws):
    seen = Seen(ws)
    old = git(ws.path, "rev-parse", "main").strip()
    yml = (ws.path / "workers/word-count/worker.yml").read_text()
    resp = await client.put("/api/workers/word-count",
                            json={"worker_yml": yml, "run_py": "print('api')\n"})
    assert resp.status == 200, await resp.text()
    new = git(ws.path, "rev-parse", "main").strip()
    [(kind, data)] = seen.events()
    assert (kind, data["source"], data["sha"], data["workers"]) == ("commit", "api", new,
                                                                     ["word-count"])
    [move] = seen.moves
    assert (move.source, move.old, move.new) == ("api", old, new) and RUN_PY in move.files
    assert seen.reloaded() == 1
    assert ws.workers.get("word-count").manifest is not None


async def test_main_moved_by_push_announces_once(client, ws, tmp_path: Path):
    seen = Seen(ws)
    old = git(ws.path, "rev-parse", "main").strip()
    url = f"http://x:{SECRET}@127.0.0.1:{client.server.port}/git/default.git"
    work = tmp_path / "clone"

    def push() -> None:
        def run(*a: str) -> None:
            subprocess.run(a, cwd=work, check=True, capture_output=True)

        subprocess.run(["git", "clone", "-q", url, str(work)], check=True, capture_output=True)
        (work / RUN_PY).write_text("print('pushed')\n")
        run("git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "push one")
        run("git", "push", "-q", "origin", "HEAD:main")

    await asyncio.to_thread(push)
    new = git(ws.path, "rev-parse", "main").strip()
    [(kind, data)] = seen.events()
    assert (kind, data["source"], data["sha"], data["before"], data["paths"]) == (
        "push", "push", new, old, [RUN_PY])
    assert data["workers"] == ["word-count"]
    [move] = seen.moves
    assert (move.source, move.old, move.new) == ("push", old, new)
    assert seen.reloaded() == 1


async def test_main_moved_by_disk_sync_announces_once(client, ws):
    seen = Seen(ws)
    old = git(ws.path, "rev-parse", "main").strip()
    (ws.path / RUN_PY).write_text("print('on disk')\n")
    resp = await client.post("/api/workers/reload")
    assert resp.status == 200, await resp.text()
    new = git(ws.path, "rev-parse", "main").strip()
    assert new != old
    [(kind, data)] = seen.events()
    assert (kind, data["source"], data["sha"], data["paths"], data["workers"]) == (
        "sync", "sync", new[:7], [RUN_PY], ["word-count"])
    [move] = seen.moves
    assert (move.source, move.old, move.new, move.files) == ("sync", old, new, [RUN_PY])
    assert seen.reloaded() == 1  # the sync's look at the disk; the commit needs no other


async def test_main_moved_not_for_runs_branch_commits(client, ws):
    seen = Seen(ws)
    resp = await client.post("/api/workers/word-count/runs", json={"inputs": {"text": "a b"}})
    assert resp.status in (200, 201, 202), await resp.text()
    for _ in range(400):
        if any(m.ref.endswith("floom/runs") for m in seen.moves):
            break
        await asyncio.sleep(0.05)
    assert {m.ref for m in seen.moves} == {"refs/heads/floom/runs"}
    assert seen.events() == [] and seen.reloaded() == 0

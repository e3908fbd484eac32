"""Moving a workspace between two servers on one machine (docs/operations.md, "Workspaces on
home nodes"): the old node mirrors it to a remote, is frozen (writes answer 503 with
Retry-After), the new node creates it from the mirror, the route switches. A writer that goes
through the routing table and retries on 503 keeps writing all along; no write it saw
acknowledged is missing afterwards."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time

import pytest

from floom_git.config import Settings
from floom_git.http.app import create_app
from floom_git.http.keys import MANAGER
from tests.conftest import SECRET, add_member, git
from tests.http.test_runs import RESULT_OK, yml

WS = "team"
AFTER_MOVE = 10  # writes the writer still makes once the route points at the new node


def node_settings(data, remote: str) -> Settings:
    return Settings(data_dir=data, secret=SECRET, watch=False, argon2_profile="CHEAPEST",
                    rate_list_per_minute=0, rate_auth_per_minute=0, rate_login_per_minute=0,
                    rate_auth_fail_per_minute=0, git_remote=remote, mirror_retry_seconds=0.05,
                    mirror_retry_max_seconds=0.2)


@pytest.fixture
async def nodes(aiohttp_client, tmp_path):
    mirrors = tmp_path / "mirrors"
    mirrors.mkdir()
    for name in ("default", WS):
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main",
                        str(mirrors / f"{name}.git")], check=True)
    remote = str(mirrors / "{workspace}.git")
    old = await aiohttp_client(create_app(node_settings(tmp_path / "a", remote)))
    new = await aiohttp_client(create_app(node_settings(tmp_path / "b", remote)))
    # An administrator on each node (identity stays per node: see docs/operations.md).
    auth = {}
    for name, client in (("old", old), ("new", new)):
        auth[name] = add_member(client.server.app, "default", None, f"ops-{name}", admin=True)[1]
    resp = await old.post("/api/workspaces", json={"id": WS}, headers=auth["old"])
    assert resp.status == 201, await resp.text()
    return old, new, auth


async def test_a_workspace_moves_between_two_servers_losing_no_acknowledged_write(nodes):
    old, new, auth = nodes
    route = {WS: (old, auth["old"])}  # the routing table in front of the nodes
    headers = {"x-workeros-workspace": WS}
    acknowledged: list[int] = []
    refused = 0

    # A run before the move: its record must travel with the workspace (floom/runs).
    await make_worker_as(old, "echo", {**auth["old"], **headers})

    # The writer runs until it has written AFTER_MOVE times on the new node, however fast the
    # writes are; the route switches only after it has seen a 503 (no timing in the test).
    async def writer() -> None:
        nonlocal refused
        i = on_new = 0
        while on_new < AFTER_MOVE:
            while True:
                client, creds = route[WS]
                resp = await client.put(
                    f"/api/contexts/company/files/note-{i}.md",
                    data=f"note {i}\n".encode(),
                    headers={**creds, **headers, "content-type": "text/markdown"},
                )
                if resp.status == 503:
                    refused += 1
                    assert resp.headers["Retry-After"].isdigit()
                    await asyncio.sleep(0.05)  # the test does not wait the whole Retry-After
                    continue
                assert resp.status == 200, await resp.text()
                acknowledged.append(i)
                on_new += client is new
                break
            i += 1

    writing = asyncio.create_task(writer())
    while len(acknowledged) < 10:
        await asyncio.sleep(0.01)
    body = await trigger_as(old, "echo", {**auth["old"], **headers})
    done = await wait_run_as(old, body["run_id"], {**auth["old"], **headers})
    assert done["status"] == "completed"

    # 1. freeze the old node's copy; writes answer 503 from now on
    resp = await old.post(f"/api/workspaces/{WS}/freeze", json={"reason": "moving to node b"},
                          headers=auth["old"])
    assert resp.status == 200 and (await resp.json())["frozen"] is True
    # 2. wait until the mirror holds every commit and no run is active
    end = time.monotonic() + 30
    while True:
        state = await (await old.get(f"/api/workspaces/{WS}/freeze", headers=auth["old"])).json()
        if state["ready"]:
            break
        assert time.monotonic() < end, state
        await asyncio.sleep(0.05)
    frozen_write = await old.put(
        "/api/contexts/company/files/late.md",
        data=b"late\n",
        headers={**auth["old"], **headers, "content-type": "text/markdown"},
    )
    assert frozen_write.status == 503 and "frozen" in (await frozen_write.json())["detail"]
    # 3. the new node creates it from the mirror; 4. the route switches
    resp = await new.post("/api/workspaces", json={"id": WS}, headers=auth["new"])
    assert resp.status == 201, await resp.text()
    end = time.monotonic() + 30
    while not refused:  # the writer, still routed to the old node, is refused there
        assert time.monotonic() < end and not writing.done()
        await asyncio.sleep(0.01)
    route[WS] = (new, auth["new"])
    await asyncio.wait_for(writing, 60)

    # Every write the writer saw acknowledged, in order, none skipped: AFTER_MOVE on the new
    # node after at least one refusal on the old.
    assert acknowledged == list(range(len(acknowledged))) and refused > 0
    moved = new.server.app[MANAGER].get(WS).path
    for i in acknowledged:
        assert git(moved, "show", f"main:contexts/company/note-{i}.md") == f"note {i}\n"
    records = git(moved, "ls-tree", "-r", "--name-only", "floom/runs")
    assert f"/{body['run_id']}/run.json" in records
    resp = await new.get(f"/api/runs/{body['run_id']}", headers={**auth["new"], **headers})
    assert resp.status == 200 and (await resp.json())["status"] == "completed"
    # The old copy stays frozen (a stale route or a direct push cannot fork the history).
    basic = base64.b64encode(f"x:{SECRET}".encode()).decode()
    resp = await old.get(f"/git/{WS}.git/info/refs?service=git-receive-pack",
                         headers={"Authorization": f"Basic {basic}"})
    assert resp.status == 503 and resp.headers["Retry-After"].isdigit()


async def test_unfreeze_accepts_writes_again_and_new_runs_wait_for_it(nodes):
    old, _new, auth = nodes
    headers = {**auth["old"], "x-workeros-workspace": WS}
    await make_worker_as(old, "echo", headers)
    assert (await old.post(f"/api/workspaces/{WS}/freeze", headers=auth["old"])).status == 200
    resp = await old.post("/api/workers/echo/runs", json={}, headers=headers)
    assert resp.status == 503 and "Retry-After" in resp.headers
    resp = await old.delete(f"/api/workspaces/{WS}/freeze", headers=auth["old"])
    assert resp.status == 200 and (await resp.json())["frozen"] is False
    run = await trigger_as(old, "echo", headers)
    assert (await wait_run_as(old, run["run_id"], headers))["status"] == "completed"


async def make_worker_as(client, name: str, headers: dict) -> None:
    resp = await client.post("/api/workers", json={"worker_yml": yml(name), "run_py": RESULT_OK},
                             headers=headers)
    assert resp.status == 201, await resp.text()


async def trigger_as(client, worker: str, headers: dict) -> dict:
    resp = await client.post(f"/api/workers/{worker}/runs", json={"inputs": {}}, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def wait_run_as(client, run_id: str, headers: dict) -> dict:
    end = time.monotonic() + 30
    while True:
        body = await (await client.get(f"/api/runs/{run_id}", headers=headers)).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        assert time.monotonic() < end, body
        await asyncio.sleep(0.05)


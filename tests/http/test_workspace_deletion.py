"""A deleted workspace leaves nothing behind. A workspace holding every kind of server-side state
(a running and a queued run, spool files, a schedule, an alert, a webhook secret with receipts
and a rate window, a share link, a secret, members, a pending invite, a workspace token) is
deleted and created again under the same name by another user, who sees nothing of it."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path

from aiohttp import web

from floom_git.http.app import create_app
from floom_git.http.keys import ENGINE, IDENTITY, MANAGER, SCHEDULER
from tests.conftest import git
from tests.http.test_runs import RESULT_OK, committed, wait_for, wait_log, yml

HOOKED = "triggers:\n  - type: webhook\n  - type: schedule\n    cron: \"0 9 * * *\"\n"
# The marker travels in the child's command line, so the test finds it wherever it runs.
SLEEPER = """import json, subprocess, sys
marker = json.load(open("inputs.json"))["marker"]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker])
print(f"child {child.pid}", flush=True)
child.wait()
"""


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


async def _user(app, name: str) -> dict[str, str]:
    identity = app[IDENTITY]
    user = identity.users.create(name, email=f"{name}@example.com")
    value, _ = identity.tokens.mint(user_id=user.id, kind="personal", name="t")
    return {"x-floom-token": value, "x-workeros-workspace": "x"}


async def _ok(resp, status: int = 200) -> dict:
    body = await resp.json() if resp.content_type == "application/json" else {}
    assert resp.status == status, body
    return body


async def test_delete_workspace_then_recreate_as_another_user_sees_nothing(
        aiohttp_client, aiohttp_server, settings):
    received: list[str] = []

    async def alert_target(request: web.Request) -> web.Response:
        received.append(request.headers["X-Floom-Alert-Id"])
        return web.Response(text="ok")

    target = web.Application()
    target.router.add_post("/hook", alert_target)
    alert_url = str((await aiohttp_server(target)).make_url("/hook"))

    settings = settings.replace(max_concurrent_runs=1, run_kill_grace_seconds=0.5, scheduler=False,
                                alert_allow_private_urls=True, alert_retry_delays=(),
                                webhook_rate_limit=2)
    app = create_app(settings)
    client = await aiohttp_client(app)
    alice = await _user(app, "alice")
    await _ok(await client.post("/api/workspaces", json={"id": "x"}, headers=alice), 201)
    old_uid = app[MANAGER].get("x").uid
    worker = {"worker_yml": yml("hooked", extra=HOOKED), "run_py": SLEEPER}
    await _ok(await client.post("/api/workers", json=worker, headers=alice), 201)

    # every kind of state the server keeps about a workspace
    await _ok(
        await client.post("/api/secrets/API_KEY", json={"value": "old-tenant"}, headers=alice)
    )
    hook = await _ok(await client.post("/api/workers/hooked/webhook-secret/rotate", headers=alice))
    share = await _ok(await client.post("/api/workers/hooked/share-link", headers=alice), 201)
    await _ok(await client.patch("/api/workers/hooked", json={"starred": True}, headers=alice))
    assert (settings.system_dir / "stars" / f"{old_uid}.json").exists()
    await _ok(await client.post("/api/workers/hooked/alerts", headers=alice,
                                json={"url": alert_url, "on": ["completed", "failed"]}), 201)
    await _ok(await client.post("/api/workspaces/x/members/invite", headers=alice,
                                json={"email": "carol@example.com", "role": "member"}), 201)
    ws_token = (await _ok(await client.post("/api/workspace/tokens", json={"name": "ci"},
                                            headers=alice), 201))["token"]
    await app[SCHEDULER].tick()
    assert app[SCHEDULER].state(old_uid)
    for _ in range(2):  # fills the rate window of (x, hooked, this client)
        assert (
            await client.post("/api/webhooks/hooked?workspace=x&token=wrong", json={})
        ).status == 401
    marker = "floom-deleted-" + secrets.token_hex(6)
    running = (await _ok(await client.post("/api/workers/hooked/runs", headers=alice,
                                           json={"inputs": {"marker": marker}})))["run_id"]
    queued = (await _ok(await client.post("/api/workers/hooked/runs", headers=alice,
                                          json={"inputs": {"marker": marker + "-q"}})))["run_id"]
    await wait_log(_Headers(client, alice), running, "child ")
    assert _processes_with(marker) and (settings.spool_dir / old_uid / running).is_dir()

    # what the old repository recorded just before it went (the last purger sees it)
    recorded: dict[str, str] = {}

    async def capture(ws) -> None:
        listing = (await asyncio.to_thread(git, ws.path, "ls-tree", "-r", "--name-only",
                                           "floom/runs")).split()
        for path in listing:
            if path.endswith("/run.json"):
                record = json.loads(git(ws.path, "show", f"floom/runs:{path}"))
                recorded[record["id"]] = f"{record['status']}/{record['error_code']}"

    app[MANAGER].on_delete.append(capture)
    await _ok(await client.delete("/api/workspaces/x", headers=alice))
    assert recorded == {
        running: "cancelled/workspace_deleted",
        queued: "cancelled/workspace_deleted",
    }

    async def stopped() -> bool:
        return not _processes_with(marker)

    await wait_for(stopped, "the deleted workspace's run process is killed")
    assert app[ENGINE].active == 0 and not app[ENGINE]._queue
    assert not (settings.spool_dir / old_uid).exists()
    assert not app[SCHEDULER].state(old_uid)
    assert not list(settings.system_dir.glob(f"*/{old_uid}*"))  # webhooks, alerts, stars, secrets

    # another user creates a workspace with the same name
    bob = await _user(app, "bob")
    await _ok(await client.post("/api/workspaces", json={"id": "x"}, headers=bob), 201)
    assert app[MANAGER].get("x").uid != old_uid
    quick = {
        "worker_yml": yml("hooked", extra="triggers:\n  - type: webhook\n"),
        "run_py": RESULT_OK,
    }
    await _ok(await client.post("/api/workers", json=quick, headers=bob), 201)
    bob_alert = await _ok(await client.post("/api/workers/hooked/alerts", headers=bob,
                                            json={"url": alert_url, "on": ["completed"]}), 201)
    bob_hook = await _ok(
        await client.post("/api/workers/hooked/webhook-secret/rotate", headers=bob)
    )

    assert (await client.get(f"/s/{share['token']}")).status == 404
    old_hook = await client.post(f"/api/webhooks/hooked?workspace=x&token={hook['webhook_token']}",
                                 json={})
    assert old_hook.status == 401
    assert (await client.get("/api/workers", headers={"x-floom-token": ws_token})).status == 401
    resp = await client.get("/api/workers", headers=alice)
    assert resp.status == 403 and (await resp.json())["detail"] == "Not a member of the workspace"
    carol = await _user(app, "carol")  # her pending invite to the old x must not carry over
    app[IDENTITY].store.claim_invites(app[IDENTITY].users.find("carol").id, "carol@example.com", 0)
    assert (await client.get("/api/workers", headers=carol)).status == 403
    members = (await _ok(await client.get("/api/workspaces/x/members", headers=bob)))["members"]
    assert [m["username"] for m in members] == ["bob"]
    assert [
        s for s in await _ok(await client.get("/api/secrets", headers=bob)) if s["status"] == "set"
    ] == []
    assert (await client.get("/api/runs", headers=bob)).headers["X-Total-Count"] == "0"
    assert app[SCHEDULER].state(app[MANAGER].get("x").uid) == {}

    # bob's own webhook works at once (the old rate window is gone) and only his alert fires
    resp = await client.post(f"/api/webhooks/hooked?workspace=x&token={bob_hook['webhook_token']}",
                             json={})
    run_id = (await _ok(resp))["run_id"]

    async def alerted() -> bool:
        return bob_alert["id"] in received

    await wait_for(alerted, "bob's alert is delivered")
    await asyncio.sleep(0)  # deliveries of one run start together; none other was started
    assert set(received) == {bob_alert["id"]}
    await committed(app[MANAGER].get("x").path, run_id, "completed")
    runs_branch = git(app[MANAGER].get("x").path, "ls-tree", "-r", "--name-only", "floom/runs")
    assert running not in runs_branch and queued not in runs_branch


class _Headers:
    """A client that sends fixed headers (wait_log takes a client)."""

    def __init__(self, client, headers: dict[str, str]) -> None:
        self._client, self._headers = client, headers

    def get(self, path: str):
        return self._client.get(path, headers=self._headers)



async def test_recreated_workspace_is_not_cloned_from_the_deleted_ones_mirror(
        aiohttp_client, settings, tmp_path):
    """With one mirror remote per workspace name, the remote still holds the deleted tenant's
    history: a workspace created again under that name must not be seeded from it."""
    remotes = tmp_path / "remotes"
    remotes.mkdir()
    for name in ("default", "x"):
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main",
                        str(remotes / f"{name}.git")], check=True)
    app = create_app(settings.replace(git_remote=str(remotes / "{workspace}.git"),
                                      mirror_retry_seconds=0.05, mirror_retry_max_seconds=0.2))
    client = await aiohttp_client(app)
    alice = await _user(app, "alice")
    await _ok(await client.post("/api/workspaces", json={"id": "x"}, headers=alice), 201)
    worker = {"worker_yml": yml("alices-worker"), "run_py": RESULT_OK}
    await _ok(await client.post("/api/workers", json=worker, headers=alice), 201)

    async def pushed() -> bool:
        proc = await asyncio.to_thread(
            subprocess.run, ["git", "-C", str(remotes / "x.git"), "ls-tree", "-r", "--name-only",
                             "main"], capture_output=True, text=True, check=False)
        return "workers/alices-worker/worker.yml" in proc.stdout

    await wait_for(pushed, "alice's worker reaches the mirror")
    await _ok(await client.delete("/api/workspaces/x", headers=alice))
    bob = await _user(app, "bob")
    await _ok(await client.post("/api/workspaces", json={"id": "x"}, headers=bob), 201)
    workers = await _ok(await client.get("/api/workers", headers=bob))
    assert "alices-worker" not in {w["id"] for w in workers}
    assert not (app[MANAGER].get("x").path / "workers" / "alices-worker").exists()

"""FLOOM_EXECUTOR=celery with real services: redis-server on a loopback port, two `floom-git
executor` processes, and the real server as the home node. Runs are fetched by the executors over
git with run tokens, confined by bubblewrap there, and reported back over HTTP."""

from __future__ import annotations

import asyncio
import base64
import secrets
import subprocess
import time

import pytest

from floom_git.http.keys import ENGINE, MANAGER, REMOTE_RUNS, SECRETS, SETTINGS
from floom_git.runtime import remote_wire as wire
from tests.celery_support import (
    FLOOM_GIT,
    Executors,
    Redis,
    claimers,
    free_port,
    home_node,
    home_settings,
)
from tests.conftest import git
from tests.http.test_runs import _sse, make_worker, trigger, wait_run

pytestmark = pytest.mark.timeout(180)
KEY = wire.new_key()

SLEEPY = """import json, time
time.sleep(0.2)
print("done", flush=True)
json.dump({"status": "success", "outputs": {"ok": True}}, open("result.json", "w"))
"""
TICKING = """import json, time
for i in range(600):
    print(f"tick {i}", flush=True)
    time.sleep(0.1)
json.dump({"status": "success"}, open("result.json", "w"))
"""
SLOW_LINES = """import json, time
print("first line", flush=True)
time.sleep(1.5)
print("second line", flush=True)
json.dump({"status": "success", "outputs": {"n": 2}}, open("result.json", "w"))
"""
SECRET_CHECK = """import json, os
ok = os.environ.get("API_KEY") == "s3cret-value-for-the-run"
print("secret reached the run:", ok, flush=True)
json.dump({"status": "success", "outputs": {"ok": ok}}, open("result.json", "w"))
"""
ARTIFACT = """import json, os
os.makedirs("out", exist_ok=True)
open("out/report.md", "w").write("# made remotely\\n")
json.dump({"status": "success", "outputs": {"ok": True}}, open("result.json", "w"))
"""


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = Redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pool(tmp_path_factory, redis):
    """Two executor processes on the shared queue."""
    executors = Executors(tmp_path_factory.mktemp("executors"), redis.url, KEY, "floom-test")
    executors.start(2, concurrency=4)
    yield executors
    executors.stop()


@pytest.fixture
async def home(aiohttp_client, tmp_path, redis, pool):
    return await home_node(aiohttp_client, home_settings(tmp_path / "home", redis.url, KEY,
                                                         "floom-test", free_port()))


def ticket_of(app, run_id: str) -> wire.Ticket:
    """The ticket the home node sealed for the run's current attempt (the test holds the key)."""
    message = wire.decode_task(app[ENGINE].backend.published[run_id])
    return wire.unseal(wire.parse_key(KEY), message)


async def wait_logged(client, run_id: str, text: str) -> dict:
    end = time.monotonic() + 30
    while True:
        body = await (await client.get(f"/api/runs/{run_id}")).json()
        if any(text in line["message"] for line in body["logs"]):
            return body
        assert time.monotonic() < end, f"{text!r} never logged: {body}"
        await asyncio.sleep(0.05)


async def test_fifty_runs_across_two_executors_complete_and_are_on_floom_runs(home, pool):
    await make_worker(home, "sleepy", SLEEPY)
    ids = [(await trigger(home, "sleepy"))["run_id"] for _ in range(50)]
    done = [await wait_run(home, rid) for rid in ids]
    assert {d["status"] for d in done} == {"completed"}, [d["error"] for d in done]
    assert all(d["outputs"] == {"ok": True} for d in done)
    used = {pid for d in done for pid in claimers(d["logs"])}
    assert used == set(pool.procs), f"claimed by {used}, executors {set(pool.procs)}"
    assert all(len(claimers(d["logs"])) == 1 for d in done)
    repo = home.server.app[MANAGER].get("default").path
    end = time.monotonic() + 20
    while True:
        records = [p for p in git(repo, "ls-tree", "-r", "--name-only", "floom/runs").split()
                   if p.endswith("/run.json")]
        if len(records) == 50:
            break
        assert time.monotonic() < end, f"{len(records)} records on floom/runs"
        await asyncio.sleep(0.1)
    assert {p.split("/")[-2] for p in records} == set(ids)


async def test_logs_stream_live_over_sse_from_a_remote_run(home):
    await make_worker(home, "slow-lines", SLOW_LINES)
    rid = (await trigger(home, "slow-lines"))["run_id"]
    seen_running = None
    async with home.get(f"/api/runs/{rid}/logs/stream") as resp:
        assert resp.status == 200
        async for raw in resp.content:
            if b"first line" in raw:
                seen_running = (await (await home.get(f"/api/runs/{rid}")).json())["status"]
                break
    assert seen_running == "running"  # the line came while the remote process still ran
    frames = await _sse(home, f"/api/runs/{rid}/logs/stream")
    messages = [f["data"].get("message") for f in frames if f.get("event") != "close"]
    assert messages.index("first line") < messages.index("second line")
    assert frames[-1]["event"] == "close" and frames[-1]["data"] == {"status": "completed"}


async def test_cancel_reaches_a_remote_run_within_two_seconds(home):
    await make_worker(home, "ticking", TICKING)
    rid = (await trigger(home, "ticking"))["run_id"]
    await wait_logged(home, rid, "tick 3")
    asked = time.monotonic()
    resp = await home.post(f"/api/runs/{rid}/cancel")
    assert resp.status == 200 and (await resp.json())["status"] == "cancel_requested"
    body = await wait_run(home, rid)
    took = time.monotonic() - asked
    assert body["status"] == "cancelled" and body["error_code"] == "user_cancel"
    assert took < 2.0, f"the cancel took {took:.2f}s to stop the remote run"
    assert any("Run cancelled" in line["message"] for line in body["logs"])


async def test_a_duplicate_delivery_of_a_run_is_ignored(home):
    await make_worker(home, "slow-lines", SLOW_LINES)
    rid = (await trigger(home, "slow-lines"))["run_id"]
    await wait_logged(home, rid, "first line")
    app = home.server.app
    await app[ENGINE].backend.publish(rid)  # the broker delivering the same task again
    body = await wait_run(home, rid)
    assert body["status"] == "completed"
    assert len(claimers(body["logs"])) == 1
    assert sum("Started `" in line["message"] for line in body["logs"]) == 1
    assert app[REMOTE_RUNS].duplicates == 1


async def test_secrets_reach_the_run_sealed_and_the_broker_holds_none(aiohttp_client, tmp_path,
                                                                       redis, pool):
    # A queue nobody consumes at first: the message can be read in the broker as it waits.
    queue = "floom-idle-" + secrets.token_hex(4)
    home = await home_node(aiohttp_client, home_settings(tmp_path / "home", redis.url, KEY, queue,
                                                         free_port()))
    app = home.server.app
    await make_worker(home, "secretive", SECRET_CHECK, secrets=["API_KEY"])
    app[SECRETS].set(app[MANAGER].get("default").uid, "API_KEY", "s3cret-value-for-the-run", "test")
    rid = (await trigger(home, "secretive"))["run_id"]
    await wait_logged(home, rid, "Queued for a Celery executor")
    raw = b"".join(redis.client.lrange(queue, 0, -1))
    assert rid.encode() in raw and b"API_KEY" in raw
    assert b"s3cret-value-for-the-run" not in raw
    assert ticket_of(app, rid).token.encode() not in raw
    consumer = Executors(tmp_path / "ex", redis.url, KEY, queue)
    consumer.start(1, concurrency=1)
    try:
        body = await wait_run(home, rid)
    finally:
        consumer.stop()
    assert body["status"] == "completed" and body["outputs"] == {"ok": True}
    assert not [k for k in redis.client.keys("*") if k.startswith(b"celery-task-meta")]


async def test_artifacts_of_a_remote_run_are_committed_by_the_home_node(home):
    await make_worker(home, "artful", ARTIFACT)
    rid = (await trigger(home, "artful"))["run_id"]
    body = await wait_run(home, rid)
    assert body["status"] == "completed", body
    [art] = body["artifacts"]
    assert art["path"] == "out/report.md"
    resp = await home.get(art["download_url"])
    assert resp.status == 200 and await resp.read() == b"# made remotely\n"


async def test_a_run_token_reaches_only_its_run_and_workspace_read_only(home):
    app = home.server.app
    await app[MANAGER].create("other")
    await make_worker(home, "ticking", TICKING)
    rid = (await trigger(home, "ticking"))["run_id"]
    other = (await trigger(home, "ticking"))["run_id"]
    await wait_logged(home, rid, "tick 1")
    token = ticket_of(app, rid).token
    base = app[SETTINGS].executor_url

    def ls_remote(ws: str) -> subprocess.CompletedProcess:
        basic = base64.b64encode(f"run:{token}".encode()).decode()
        return subprocess.run(
            ["git", "-c", f"http.extraHeader=Authorization: Basic {basic}", "ls-remote",
             f"{base}/git/{ws}.git"], capture_output=True, text=True, timeout=60, check=False)

    mine = await asyncio.to_thread(ls_remote, "default")
    assert mine.returncode == 0 and "refs/heads/main" in mine.stdout
    theirs = await asyncio.to_thread(ls_remote, "other")
    assert theirs.returncode != 0 and "not found" in theirs.stderr.lower()

    bearer = {"Authorization": f"Bearer {token}", wire.EXECUTOR_HEADER: "x", "x-floom-attempt": "1"}
    resp = await home.post(f"/api/runs/{other}/executor/logs", headers=bearer,
                           json={"first": 0, "lines": []})
    assert resp.status == 403 and "another run" in (await resp.json())["detail"]
    resp = await home.post(f"/api/runs/{other}/executor/result", headers=bearer,
                           json={"status": "completed"})
    assert resp.status == 403
    for method, path in (("GET", "/api/workers"), ("GET", f"/api/runs/{rid}"),
                         ("POST", f"/api/runs/{rid}/cancel")):
        resp = await home.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 403, (method, path, resp.status)
    resp = await home.post(f"/api/runs/{rid}/executor/heartbeat")  # the shared secret: no
    assert resp.status == 403
    push = await asyncio.to_thread(
        subprocess.run, ["git", "-c", "http.extraHeader=Authorization: Basic "
                         + base64.b64encode(f"run:{token}".encode()).decode(), "push",
                         f"{base}/git/default.git", "HEAD:refs/heads/x"],
        capture_output=True, text=True, timeout=60, cwd=app[MANAGER].get("default").path)
    assert push.returncode != 0 and "403" in push.stderr + push.stdout

    for run_id in (rid, other):
        assert (await home.post(f"/api/runs/{run_id}/cancel")).status == 200
        await wait_run(home, run_id)
    ended = await asyncio.to_thread(ls_remote, "default")
    assert ended.returncode != 0  # the token ended with its run


@pytest.fixture
async def lonely(aiohttp_client, tmp_path, redis):
    """A home node on its own queue, with two executors of its own to kill."""
    queue = "floom-loss-" + secrets.token_hex(4)
    executors = Executors(tmp_path / "ex", redis.url, KEY, queue)
    executors.start(2, concurrency=2)
    home = await home_node(aiohttp_client, home_settings(tmp_path / "home", redis.url, KEY, queue,
                                                         free_port(), executor_lost_seconds=5.0))
    yield home, executors
    executors.stop()


async def _killed_mid_run(home, executors, worker: str) -> str:
    rid = (await trigger(home, worker))["run_id"]
    body = await wait_logged(home, rid, "tick 2")
    [pid] = claimers(body["logs"])
    executors.kill(pid)
    return rid


async def test_an_executor_killed_mid_run_leaves_the_run_failed_executor_lost(lonely):
    home, executors = lonely
    await make_worker(home, "ticking", TICKING)
    rid = await _killed_mid_run(home, executors, "ticking")
    body = await wait_run(home, rid)
    assert body["status"] == "failed" and body["error_code"] == "executor_lost", body
    assert len(claimers(body["logs"])) == 1


RETRYING = """import json, os, time
print("tick 2", flush=True)
time.sleep(3)
json.dump({"status": "success", "outputs": {"ok": True}}, open("result.json", "w"))
"""


async def test_a_killed_run_is_queued_again_when_the_worker_declares_retry(lonely):
    home, executors = lonely
    await make_worker(home, "retrying", RETRYING,
                      extra="retry:\n  max_attempts: 2\n  delay_seconds: 0\n")
    rid = await _killed_mid_run(home, executors, "retrying")
    body = await wait_run(home, rid)
    assert body["status"] == "completed", body
    first, second = claimers(body["logs"])
    assert first != second and second in executors.procs
    assert any("attempt 2 of 2" in line["message"] for line in body["logs"])


def test_a_second_executor_on_the_same_data_dir_refuses_to_start(pool):
    proc = subprocess.run([FLOOM_GIT, "executor", "--data-dir", str(pool.folder / "executor-0")],
                          env=pool.env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "give each executor its own --data-dir" in proc.stderr


async def test_a_run_no_executor_can_claim_fails_executor_unavailable(aiohttp_client, tmp_path,
                                                                      redis):
    """The executor cannot reach the home node (a wrong FLOOM_HOME_URL): it puts the task back
    and tries again until the ticket's claim window ends; the home node fails the run then."""
    queue = "floom-unreachable-" + secrets.token_hex(4)
    executors = Executors(tmp_path / "ex", redis.url, KEY, queue)
    executors.start(1, concurrency=1)
    try:
        port = free_port()
        settings = home_settings(tmp_path / "home", redis.url, KEY, queue, port,
                                 home_url=f"http://127.0.0.1:{free_port()}",
                                 executor_claim_seconds=4.0)
        home = await home_node(aiohttp_client, settings, port)
        await make_worker(home, "sleepy", SLEEPY)
        rid = (await trigger(home, "sleepy"))["run_id"]
        body = await wait_run(home, rid)
        assert body["status"] == "failed" and body["error_code"] == "executor_unavailable", body
        log = next(iter(executors.logs.values()))
        end = time.monotonic() + 20
        while b"unreachable" not in log.read_bytes():
            assert time.monotonic() < end, log.read_text()[-2000:]
            await asyncio.sleep(0.1)
    finally:
        executors.stop()

"""Runs API against the real server: real workers created through the API, real subprocesses,
records read back from floom/runs with the real git client. Waits poll with a deadline."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest

from floom_git.http.app import create_app
from floom_git.http.keys import SECRETS
from floom_git.services.workspaces import read_uid
from tests.conftest import AUTH, git, uid

DEADLINE = 20.0
ENDED = ("completed", "failed", "cancelled", "pending_approval")

YML = """schema_version: "0.3"
name: {name}
title: {name}
description: A test worker.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
{exec_extra}{extra}"""

RESULT_OK = """import json
inputs = json.load(open("inputs.json"))
json.dump({"status": "success", "outputs": {"echo": inputs}}, open("result.json", "w"))
"""


def yml(name: str, *, inputs: str = "", secrets: list[str] | None = None, extra: str = "") -> str:
    exec_extra = ""
    if inputs:
        exec_extra += "  inputs:\n" + inputs
    if secrets:
        exec_extra += f"  secrets: [{', '.join(secrets)}]\n"
    return YML.format(name=name, exec_extra=exec_extra, extra=extra)


async def make_worker(client, name: str, run_py: str, *, files: dict[str, str] | None = None,
                      **kw) -> None:
    body = {"worker_yml": yml(name, **kw), "run_py": run_py,
            "files": [{"path": p, "content": c} for p, c in (files or {}).items()]}
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 201, await resp.text()


async def trigger(client, worker: str, inputs: dict | None = None, status: int = 200) -> dict:
    resp = await client.post(f"/api/workers/{worker}/runs", json={"inputs": inputs or {}})
    body = await resp.json()
    assert resp.status == status, body
    return body


async def wait_run(client, run_id: str, until: tuple[str, ...] = ENDED) -> dict:
    """Poll the run until its status is one of `until`; fail only after a generous deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while True:
        resp = await client.get(f"/api/runs/{run_id}")
        body = await resp.json()
        assert resp.status == 200, body
        if body["status"] in until:
            return body
        assert loop.time() < end, f"run {run_id} stayed {body['status']}: {body}"
        await asyncio.sleep(0.05)


async def wait_for(predicate, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await predicate():
        assert loop.time() < end, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def wait_log(client, run_id: str, text: str) -> None:
    async def seen() -> bool:
        body = await (await client.get(f"/api/runs/{run_id}")).json()
        return any(text in line["message"] for line in body.get("logs", []))

    await wait_for(seen, f"log line {text!r} in {run_id}")


async def committed(ws_path: Path, run_id: str, status: str) -> dict:
    """The run.json of `run_id` on floom/runs once it shows `status` (records commit shortly)."""
    found: dict = {}

    async def check() -> bool:
        try:
            listing = git(ws_path, "ls-tree", "-r", "--name-only", "floom/runs")
        except subprocess.CalledProcessError:  # no floom/runs branch yet
            return False
        path = next((p for p in listing.splitlines() if p.endswith(f"/{run_id}/run.json")), None)
        if path is None:
            return False
        found.update(json.loads(git(ws_path, "show", f"floom/runs:{path}")), _path=path)
        return found["status"] == status

    await wait_for(check, f"{run_id} committed as {status}")
    return found


# -- trigger and finish ----------------------------------------------------------------------------
async def test_create_run_template_worker_completes_with_record_in_git(client, ws_path):
    body = await trigger(client, "word-count", {"text": "the workspace is a repo"})
    assert body["status"] == "queued" and body["run_id"].startswith("run_")
    run = await wait_run(client, body["run_id"])
    assert run["status"] == "completed", run
    assert run["outputs"] == {"words": 5, "lines": 1, "longest": "workspace"}
    assert run["inputs"]["min_length"] == 1  # default applied
    main_sha = git(ws_path, "rev-parse", "main").strip()
    assert run["worker_sha"] == main_sha[:7]
    assert any(line["message"] == "counted 5 words" for line in run["logs"])

    record = await committed(ws_path, body["run_id"], "completed")
    assert record["worker_sha"] == main_sha
    assert record["_path"].startswith(f"runs/{record['created_at'][:10]}/")
    logs = git(ws_path, "show", f"floom/runs:{record['_path'].replace('run.json', 'logs.ndjson')}")
    assert "counted 5 words" in logs
    assert git(ws_path, "log", "-1", "--format=%s", "floom/runs").startswith("runs: ")
    assert git(ws_path, "status", "--porcelain") == ""


async def test_create_run_missing_required_inputs_is_400_without_record(client, ws_path):
    inputs = ("    - {name: a, type: string, required: true}\n"
              "    - {name: b, type: number, required: true}\n"
              "    - {name: c, type: string, required: true, default: x}\n")
    await make_worker(client, "needs-inputs", RESULT_OK, inputs=inputs)
    resp = await client.post("/api/workers/needs-inputs/runs", json={"inputs": {"a": ""}})
    assert resp.status == 400
    assert (await resp.json())["detail"] == "Missing required inputs: a, b"
    resp = await client.get("/api/runs")
    assert resp.headers["X-Total-Count"] == "0"
    assert "floom/runs" not in git(ws_path, "branch", "--list", "floom/runs")


@pytest.mark.parametrize(("inputs", "detail"), [
    ({"n": "abc"}, "inputs.n: expected a number, got 'abc'"),
    ({"n": 50}, "inputs.n: must be <= 10"),
    ({"n": 1, "mode": "other"}, "inputs.mode: must be one of fast, slow"),
    ({"n": 1, "flag": "maybe"}, "inputs.flag: expected true or false"),
])
async def test_create_run_bad_input_value_is_400_naming_it(client, inputs, detail):
    spec = ("    - {name: n, type: number, required: true, bounds: {maximum: 10}}\n"
            "    - {name: mode, type: select, options: [fast, slow], default: fast}\n"
            "    - {name: flag, type: boolean}\n")
    await make_worker(client, "typed-inputs", RESULT_OK, inputs=spec)
    resp = await client.post("/api/workers/typed-inputs/runs", json={"inputs": inputs})
    assert resp.status == 400
    assert (await resp.json())["detail"] == detail


async def test_create_run_converts_inputs_and_fills_defaults(client):
    spec = ("    - {name: n, type: number, required: true}\n"
            "    - {name: mode, type: select, options: [fast, slow], default: slow}\n")
    await make_worker(client, "typed-ok", RESULT_OK, inputs=spec)
    run = await wait_run(
        client, (await trigger(client, "typed-ok", {"n": "7", "extra": 1}))["run_id"]
    )
    assert run["outputs"]["echo"] == {"n": 7, "mode": "slow", "extra": 1}


@pytest.mark.parametrize("verb", ["pause", "archive"])
async def test_create_run_paused_or_archived_worker_is_409(client, verb):
    await make_worker(client, "held-worker", RESULT_OK)
    assert (await client.post(f"/api/workers/held-worker/{verb}")).status == 200
    resp = await client.post("/api/workers/held-worker/runs", json={"inputs": {}})
    assert resp.status == 409
    assert "held-worker is" in (await resp.json())["detail"]


async def test_create_run_worker_in_error_is_400_with_reason(client, ws_path):
    folder = ws_path / "workers" / "broken-one"
    folder.mkdir()
    (folder / "worker.yml").write_text("schema_version: '0.3'\nname: broken-one\n")
    (folder / "run.py").write_text("print(1)\n")
    await client.post("/api/workers/reload")
    resp = await client.post("/api/workers/broken-one/runs", json={})
    assert resp.status == 400
    detail = (await resp.json())["detail"]
    assert detail.startswith("Worker broken-one is in error state: workers/broken-one/worker.yml")


async def test_create_run_unknown_worker_is_404(client):
    resp = await client.post("/api/workers/no-such-worker/runs", json={"inputs": {}})
    assert resp.status == 404
    assert (await resp.json())["detail"] == "Worker not found"


# -- secrets ---------------------------------------------------------------------------------------
SHOW_ENV = """import json, os
env = {k: os.environ.get(k) for k in ("API_KEY", "OTHER_KEY", "LEAKY_SERVER_VAR", "FLOOM_RUN_ID")}
print("key is " + str(os.environ.get("API_KEY")))
json.dump({"status": "success", "outputs": {"env": env, "env_local": open(".env.local").read(),
           "home": os.environ["HOME"] == os.getcwd()}}, open("result.json", "w"))
"""


async def test_run_sees_only_declared_secrets(client, monkeypatch):
    monkeypatch.setenv("LEAKY_SERVER_VAR", "server-only")
    store = client.server.app[SECRETS]
    store.set(uid(client.server.app, "default"), "API_KEY", "sk-declared-123", "test")
    store.set(uid(client.server.app, "default"), "OTHER_KEY", "sk-undeclared-456", "test")
    await make_worker(client, "secret-user", SHOW_ENV, secrets=["API_KEY"])
    run = await wait_run(client, (await trigger(client, "secret-user"))["run_id"])
    assert run["status"] == "completed", run
    env = run["outputs"]["env"]
    assert env["OTHER_KEY"] is None and env["LEAKY_SERVER_VAR"] is None
    assert env["FLOOM_RUN_ID"] == run["id"]
    assert env["API_KEY"] == "<REDACTED:API_KEY>"  # outputs are scrubbed of secret values
    assert run["outputs"]["env_local"] == "API_KEY=<REDACTED:API_KEY>\n"
    assert run["outputs"]["home"] is True
    assert any(line["message"] == "key is <REDACTED:API_KEY>" for line in run["logs"])


async def test_run_missing_declared_secret_fails(client):
    await make_worker(client, "secret-missing", RESULT_OK, secrets=["NOT_SET_KEY"])
    run = await wait_run(client, (await trigger(client, "secret-missing"))["run_id"])
    assert run["status"] == "failed" and run["error_code"] == "missing_secret"
    assert "NOT_SET_KEY" in run["error"]


# -- reading ---------------------------------------------------------------------------------------
async def test_list_runs_filters_paging_and_cursor(client):
    await make_worker(client, "lister", RESULT_OK)
    await make_worker(client, "crasher", "raise SystemExit(3)\n")
    ids = []
    for _ in range(3):
        ids.append((await trigger(client, "lister"))["run_id"])
    failing = (await trigger(client, "crasher"))["run_id"]
    for rid in ids + [failing]:
        await wait_run(client, rid)
    resp = await client.get("/api/runs?limit=2")
    page = await resp.json()
    assert resp.headers["X-Total-Count"] == "4"
    assert [r["id"] for r in page] == [failing, ids[2]]
    resp = await client.get("/api/runs?worker_id=lister&offset=1")
    assert [r["id"] for r in await resp.json()] == [ids[1], ids[0]]
    assert resp.headers["X-Total-Count"] == "3"
    resp = await client.get("/api/runs?status=failed")
    assert [r["id"] for r in await resp.json()] == [failing]
    last = page[-1]
    resp = await client.get("/api/runs", params={"before_created_at": last["created_at"],
                                                 "before_id": last["id"]})
    assert [r["id"] for r in await resp.json()] == [ids[1], ids[0]]


@pytest.mark.parametrize(("query", "detail"), [
    ("status=done", "status: 'done' is not one of"),
    ("limit=0", "limit: must be at least 1"),
    ("before_id=run_x", "before_id: pass it together with before_created_at"),
    ("since=yesterday", "since: expected an ISO-8601 timestamp"),
])
async def test_list_runs_bad_query_is_400(client, query, detail):
    resp = await client.get(f"/api/runs?{query}")
    assert resp.status == 400
    assert (await resp.json())["detail"].startswith(detail)


async def test_list_runs_timestamps_at_the_calendar_edges_filter_everything(client):
    rid = (await trigger(client, "word-count", {"text": "a"}))["run_id"]
    for query, ids in (("before_created_at=0001-01-01T00:00:00%2B01:00", []),
                       ("since=0001-01-01T00:00:00%2B01:00", [rid]),
                       ("until=9999-12-31T23:59:59-01:00", [rid])):
        resp = await client.get(f"/api/runs?{query}")
        assert resp.status == 200, await resp.text()
        assert [r["id"] for r in await resp.json()] == ids, query


async def test_list_runs_limit_over_200_is_capped(client):
    for _ in range(3):
        await trigger(client, "word-count", {"text": "a b"})
    resp = await client.get("/api/runs?limit=500")
    assert resp.status == 200
    assert len(await resp.json()) == 3 and resp.headers["X-Total-Count"] == "3"


async def test_get_run_unknown_is_404(client):
    resp = await client.get("/api/runs/run_000000000000")
    assert resp.status == 404
    assert (await resp.json())["detail"] == "Run not found"


LOGGER = """import json, sys
print("out line")
print("err line", file=sys.stderr)
json.dump({"status": "success", "outputs": {}}, open("result.json", "w"))
"""


async def test_get_run_logs_ndjson_filtered_by_level(client):
    await make_worker(client, "logger", LOGGER)
    rid = (await trigger(client, "logger"))["run_id"]
    await wait_run(client, rid)
    resp = await client.get(f"/api/runs/{rid}/logs")
    assert resp.content_type == "application/x-ndjson"
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert {"out line", "err line"} <= {x["message"] for x in lines}
    resp = await client.get(f"/api/runs/{rid}/logs?level=warning")
    warned = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert [x["message"] for x in warned] == ["err line"]
    resp = await client.get(f"/api/runs/{rid}/logs?limit=1")
    assert len((await resp.text()).splitlines()) == 1


ARTIFACT = """import json, os
os.makedirs("out/sub", exist_ok=True)
open("out/report.md", "w").write("# Report\\n")
open("out/sub/data.csv", "w").write("a,b\\n1,2\\n")
open("extra.txt", "w").write("listed")
json.dump({"status": "success", "outputs": {"report": "out/report.md"},
           "artifacts": ["extra.txt"]}, open("result.json", "w"))
"""


async def test_download_run_zip_and_artifacts(client, ws_path):
    await make_worker(client, "artifacter", ARTIFACT)
    rid = (await trigger(client, "artifacter"))["run_id"]
    run = await wait_run(client, rid)
    arts = {a["path"]: a for a in run["artifacts"]}
    assert set(arts) == {"out/report.md", "out/sub/data.csv"}  # listed extra.txt is not under out/
    assert arts["out/report.md"]["media_type"] == "text/markdown"
    resp = await client.get(f"/api/runs/{rid}/artifacts/{arts['out/sub/data.csv']['id']}/download")
    assert resp.status == 200 and await resp.read() == b"a,b\n1,2\n"
    resp = await client.get(f"/api/runs/{rid}/artifacts/art_nope/download")
    assert resp.status == 404
    record = await committed(ws_path, rid, "completed")
    base = record["_path"].rsplit("/", 1)[0]
    assert git(ws_path, "show", f"floom/runs:{base}/artifacts/out/report.md") == "# Report\n"
    resp = await client.get(f"/api/runs/{rid}/download")
    with zipfile.ZipFile(io.BytesIO(await resp.read())) as zf:
        names = set(zf.namelist())
        assert {"run.json", "outputs.json", "logs.ndjson", "artifacts/out/report.md"} <= names
        assert json.loads(zf.read("run.json"))["id"] == rid


# -- cancellation ----------------------------------------------------------------------------------
SLEEPER = """import json, subprocess, sys, time
marker = json.load(open("inputs.json")).get("marker", "sleeper")
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker])
print(f"child {child.pid}", flush=True)
time.sleep(300)
"""


@pytest.fixture
def settings(settings):
    return settings.replace(max_concurrent_runs=1, run_kill_grace_seconds=2.0)


def processes_with(marker: str) -> list[int]:
    """Host pids of live (not zombie) processes with `marker` as an argument: a run's pids
    are those of its own PID namespace, so the host's /proc is where to look."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state != "Z":
            found.append(int(entry.name))
    return found


async def test_cancel_queued_then_running_run(client):
    await make_worker(client, "sleeper", SLEEPER)
    marker = f"sleeper-{uuid.uuid4().hex}"
    first = (await trigger(client, "sleeper", {"marker": marker}))["run_id"]
    second = (await trigger(client, "sleeper"))["run_id"]
    await wait_log(client, first, "child ")
    queued = await (await client.get(f"/api/runs/{second}")).json()
    assert queued["status"] == "queued" and queued["queue_position"] == 1

    resp = await client.post(f"/api/runs/{second}/cancel")
    assert (await resp.json()) == {"status": "cancelled", "run_id": second}
    cancelled = await wait_run(client, second)
    assert cancelled["status"] == "cancelled" and cancelled["error_code"] == "cancelled_queued"

    assert processes_with(marker)
    resp = await client.post(f"/api/runs/{first}/cancel")
    assert (await resp.json())["status"] == "cancel_requested"
    run = await wait_run(client, first)
    assert run["status"] == "cancelled" and run["error_code"] == "user_cancel"

    async def child_gone() -> bool:
        return not processes_with(marker)

    await wait_for(child_gone, "the run's child process is killed with it")
    resp = await client.post(f"/api/runs/{first}/cancel")
    assert resp.status == 409
    assert (await resp.json())["detail"] == f"Run {first} is already cancelled"


async def test_get_run_has_one_shape_in_every_state(client):
    from floom_git.schemas.run import RunDetail

    await make_worker(client, "sleeper", SLEEPER)
    await make_worker(client, "asks", RESULT_OK, extra="approvals:\n  required: true\n")
    await make_worker(client, "broken", "import sys\nsys.exit(3)\n")
    running = (await trigger(client, "sleeper"))["run_id"]
    queued = (await trigger(client, "sleeper"))["run_id"]
    await wait_log(client, running, "child ")
    seen = {"running": await (await client.get(f"/api/runs/{running}")).json(),
            "queued": await (await client.get(f"/api/runs/{queued}")).json()}
    for rid in (queued, running):
        await client.post(f"/api/runs/{rid}/cancel")
    seen["cancelled"] = await wait_run(client, running)
    for worker, inputs in (("word-count", {"text": "a"}), ("asks", {}), ("broken", {})):
        run = await wait_run(client, (await trigger(client, worker, inputs))["run_id"])
        seen[run["status"]] = run
    assert {k: v["status"] for k, v in seen.items()} == {
        "running": "running", "queued": "queued", "cancelled": "cancelled",
        "completed": "completed", "pending_approval": "pending_approval", "failed": "failed"}
    for state, run in seen.items():
        assert list(run) == list(RunDetail.__struct_fields__), state
    assert seen["queued"]["output"] is None and seen["queued"]["approval_trail"] is None
    assert seen["queued"]["queue_position"] == 1 and seen["completed"]["queue_position"] is None
    assert seen["completed"]["output"] == seen["completed"]["outputs"] == {"words": 1, "lines": 1,
                                                                           "longest": "a"}
    assert seen["completed"]["output_schema"] == [
        {"name": "words", "type": "number", "label": "Words", "value": 1},
        {"name": "lines", "type": "number", "label": "Lines", "value": 1},
        {"name": "longest", "type": "string", "label": "Longest", "value": "a"}]
    assert (
        seen["pending_approval"]["approval_trail"]["id"]
        == seen["pending_approval"]["approval"]["id"]
    )


@pytest.mark.parametrize(("accept", "ctype"), [
    (None, "application/x-ndjson"), ("*/*", "application/x-ndjson"),
    ("application/x-ndjson", "application/x-ndjson"), ("application/json", "application/json"),
    ("application/json, application/x-ndjson;q=0.5", "application/json"),
    ("text/html", "application/x-ndjson"),
])
async def test_get_run_logs_negotiates_json_or_ndjson(client, accept, ctype):
    run = await wait_run(client, (await trigger(client, "word-count", {"text": "a b"}))["run_id"])
    resp = await client.get(
        f"/api/runs/{run['id']}/logs", headers={"Accept": accept} if accept else {}
    )
    assert resp.status == 200 and resp.content_type == ctype
    text = await resp.text()
    lines = (
        json.loads(text)
        if ctype == "application/json"
        else [json.loads(x) for x in text.splitlines()]
    )
    assert lines == run["logs"] and run["log_count"] == len(lines)


# -- live streams ----------------------------------------------------------------------------------
async def _sse(
    client, path: str, headers: dict | None = None, stop_after: int | None = None
) -> list[dict]:
    """Read an SSE response into [{id, event, data}] (all of it, or the first `stop_after`)."""
    frames: list[dict] = []
    async with client.get(path, headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/event-stream"
        current: dict = {}
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if "data" in current:
                    frames.append(current)
                    if stop_after and len(frames) >= stop_after:
                        break
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(":")
                current[key] = json.loads(value.strip()) if key == "data" else value.strip()
    return frames


CHATTY = """import json, time
for i in range(6):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
json.dump({"status": "success", "outputs": {"n": 6}}, open("result.json", "w"))
"""


async def test_run_events_resume_with_last_event_id_misses_nothing(client):
    await make_worker(client, "chatty", CHATTY)
    rid = (await trigger(client, "chatty"))["run_id"]
    first = await _sse(client, f"/api/runs/{rid}/events", stop_after=3)
    assert [f["data"]["type"] for f in first[:2]] == ["status", "status"]
    rest = await _sse(client, f"/api/runs/{rid}/events", headers={"Last-Event-ID": first[-1]["id"]})
    frames = first + rest
    ids = [int(f["id"]) for f in frames]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no repeat
    assert frames[-1]["data"] == {"type": "close", "run_id": rid, "status": "completed"}
    assert frames[-2]["data"]["status"] == "completed"
    logs = [f["data"]["message"] for f in frames if f["data"]["type"] == "log"]
    assert [m for m in logs if m.startswith("line ")] == [f"line {i}" for i in range(6)]
    replay = await _sse(client, f"/api/runs/{rid}/events")
    assert replay == frames  # a finished run replays the same events, then closes


async def test_run_log_stream_resumes_from_query_param(client):
    await make_worker(client, "chatty", CHATTY)
    rid = (await trigger(client, "chatty"))["run_id"]
    await wait_run(client, rid)
    full = await _sse(client, f"/api/runs/{rid}/logs/stream")
    assert full[-1]["event"] == "close"
    lines = full[:-1]
    assert all(set(f["data"]) == {"seq", "level", "message", "timestamp"} for f in lines)
    cut = lines[2]["id"]
    rest = await _sse(client, f"/api/runs/{rid}/logs/stream?last_event_id={cut}")
    assert rest == full[3:]


async def test_run_stream_parts_queued_running_finish(client):
    rid = (await trigger(client, "word-count", {"text": "a b"}))["run_id"]
    parts = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/stream")]
    assert parts[0] == {"type": "step-start", "status": "queued"}
    assert parts[1] == {"type": "step-start", "status": "running"}
    assert {"type": "text", "text": "counted 2 words", "level": "info"} in parts
    assert parts[-1]["type"] == "finish" and parts[-1]["status"] == "completed"
    assert parts[-1]["outputs"]["words"] == 2


# -- restart ---------------------------------------------------------------------------------------
async def test_restart_fails_running_runs_and_runs_queued_ones(aiohttp_client, settings, ws_path):
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    await make_worker(client, "sleeper", SLEEPER)
    await make_worker(client, "quick", RESULT_OK)
    running = (await trigger(client, "sleeper"))["run_id"]
    queued = (await trigger(client, "quick"))["run_id"]
    await wait_log(client, running, "child ")
    await client.close()  # stops the app: processes killed, records stay as they were

    client = await aiohttp_client(create_app(settings), headers=AUTH)
    failed = await wait_run(client, running)
    assert failed["status"] == "failed" and failed["error_code"] == "interrupted_by_restart"
    assert failed["error"]
    done = await wait_run(client, queued)
    assert done["status"] == "completed"
    resp = await client.get("/api/runs")
    assert resp.headers["X-Total-Count"] == "2"  # the index came back from floom/runs + spool
    await committed(ws_path, running, "failed")
    await committed(ws_path, queued, "completed")


async def test_restart_with_stale_index_cache_catches_up_from_git(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    first = (await trigger(client, "word-count", {"text": "one"}))["run_id"]
    await wait_run(client, first)
    await client.close()
    cache = settings.spool_dir / read_uid(settings.workspaces_dir / "default") / "index.cache"
    stale = cache.read_bytes()

    client = await aiohttp_client(create_app(settings), headers=AUTH)
    second = (await trigger(client, "word-count", {"text": "two words"}))["run_id"]
    await wait_run(client, second)
    await client.close()
    cache.write_bytes(stale)  # as if the server had crashed before saving its index

    client = await aiohttp_client(create_app(settings), headers=AUTH)
    listed = await (await client.get("/api/runs")).json()
    assert [(r["id"], r["status"]) for r in listed] == [(second, "completed"), (first, "completed")]
    await client.close()
    cache.unlink()  # no cache at all: every record is read from floom/runs
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    assert (await client.get("/api/runs")).headers["X-Total-Count"] == "2"


# -- sandbox ---------------------------------------------------------------------------------------
async def test_run_without_bubblewrap_fails_sandbox_unavailable(aiohttp_client, settings, caplog):
    broken = settings.replace(bwrap_binary="/nonexistent/bwrap", shared_secret_role="admin")
    with caplog.at_level(logging.ERROR, logger="floom_git.runs"):
        client = await aiohttp_client(create_app(broken), headers=AUTH)
    assert any("runs will fail with sandbox_unavailable" in r.getMessage() for r in caplog.records)
    run = await wait_run(client, (await trigger(client, "word-count", {"text": "a b"}))["run_id"])
    assert run["status"] == "failed" and run["error_code"] == "sandbox_unavailable", run
    assert "bubblewrap is not installed" in run["error"] and "FLOOM_SANDBOX=none" in run["error"]
    health = await (await client.get("/api/health/details")).json()
    assert health["status"] == "degraded"
    sandbox = health["checks"]["sandbox"]
    assert sandbox["ok"] is False and sandbox["mode"] == "bwrap"
    assert sandbox["detail"].startswith(
        "runs fail with sandbox_unavailable: bubblewrap is not installed"
    )


async def test_health_details_shows_runs_confined(aiohttp_client, settings):
    client = await aiohttp_client(
        create_app(settings.replace(shared_secret_role="admin")), headers=AUTH
    )
    health = await (await client.get("/api/health/details")).json()
    assert health["checks"]["sandbox"] == {"ok": True, "mode": "bwrap", "detail": None}


async def test_unconfined_server_warns_at_start_up(aiohttp_client, settings, caplog):
    with caplog.at_level(logging.WARNING, logger="floom_git.runs"):
        client = await aiohttp_client(create_app(settings.replace(sandbox="none")), headers=AUTH)
    assert any(r.levelno == logging.WARNING and "FLOOM_SANDBOX=none: runs are NOT confined"
               in r.getMessage() for r in caplog.records)
    run = await wait_run(client, (await trigger(client, "word-count", {"text": "a b"}))["run_id"])
    assert run["status"] == "completed"
    assert any("NOT sandboxed" in line["message"] for line in run["logs"])
# -- a cold start: no index cache, many records ---------------------------------------------
COLD = 2_500  # three days of records: 1,000, 1,000 and the newest 500


def cold_workspace(settings, statuses: dict[int, str] | None = None):
    from benchmarks.fixtures import add_run_records
    from floom_git.services.workspaces import WorkspaceManager

    ws = WorkspaceManager(settings).create_sync("default")
    add_run_records(ws.path, COLD, per_commit=500, statuses=statuses)
    return ws


def rid(i: int) -> str:
    return f"run_{i:012x}"  # the ids benchmarks/fixtures.py gives its records


async def test_cold_index_reads_newest_days_first_then_recovers_the_rest(settings):
    import itertools

    from floom_git.services import runs
    from floom_git.services.run_records import HEAD_RUNS, RunStore

    ws = cold_workspace(settings, {10: "running", 11: "queued"})  # in the oldest day
    store = RunStore.of(ws)
    spooled = await asyncio.to_thread(store.load)
    assert not store.complete and store.count() == COLD
    head = 500 + 1_000  # whole days, newest first, until HEAD_RUNS
    assert HEAD_RUNS == 1_000 and store.covers(head) and not store.covers(head + 1)
    assert [e.id for e in itertools.islice(store.entries(), 2)] == [rid(COLD - 1), rid(COLD - 2)]
    assert runs.recover(ws, spooled) == []  # nothing running or queued in the newest days
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(store.ready(), 0.05)  # the whole index is not there yet

    # Before the rest is read, the count is still right: a run of the older days put again
    # counts once, a run that floom/runs does not have (from the spool) counts as one more.
    import msgspec

    from benchmarks.fixtures import _run_record
    from floom_git.storage.run_log import _decode_record

    old = _decode_record.decode(_run_record(5, 0)[1])
    assert old.id == rid(5) and old.created_at[:10] < store.get(rid(COLD - 1)).created_at[:10]
    store.put(old)
    assert store.count() == COLD
    store.put(msgspec.structs.replace(old, id=rid(COLD)))
    assert store.count() == COLD + 1

    added = store.add_rest(await asyncio.to_thread(store.read_rest))
    await store.ready()
    assert store.complete and store.count() == COLD + 1 and len(added) == COLD - head - 1
    assert runs.recover(ws, [], entries=added) == [rid(11)]
    failed = store.get(rid(10))
    assert failed.status == "failed" and failed.error_code == "interrupted_by_restart"
    assert [e.id for e in store.entries()][-2:] == [rid(1), rid(0)]
    await store.close()


async def test_a_restart_reads_the_older_days_from_the_index_cache(settings, monkeypatch, caplog):
    import msgspec

    from floom_git.services.run_records import RunStore
    from floom_git.storage.run_log import IndexCache, RunLog

    ws = cold_workspace(settings)
    first = RunStore.of(ws)
    await asyncio.to_thread(first.load)
    first.add_rest(await asyncio.to_thread(first.read_rest))
    assert first.cold  # no cache: the older days came from floom/runs
    await asyncio.to_thread(first.write_cache)
    want = [(e.id, e.status) for e in first.entries()]
    await first.close()

    read: list[str] = []  # run folders read from floom/runs (the real reader runs)
    real = RunLog.read_entries

    def spied(self, folders):
        read.extend(f.run for f in folders)
        return real(self, folders)

    monkeypatch.setattr(RunLog, "read_entries", spied)

    async def restart() -> RunStore:
        store = RunStore(ws, None)
        await asyncio.to_thread(store.load)
        assert store.count() == COLD and not store.complete
        store.add_rest(await asyncio.to_thread(store.read_rest))
        assert store.count() == COLD and [(e.id, e.status) for e in store.entries()] == want
        return store

    again = await restart()
    assert len(read) == 500 + 1_000 and not again.cold  # the newest days only: the rest cached
    await again.close()
    # A record of the oldest day changed on floom/runs after the cache was saved: the cache is
    # brought up to the branch by a tree diff.
    from benchmarks.fixtures import _run_record

    path, data = _run_record(3, 0, "failed")
    stream = (b"commit refs/heads/floom/runs\ncommitter floom <f@x> 1700000000 +0000\n"
              b"data 4\nedit\nfrom refs/heads/floom/runs^0\n"
              b"M 100644 inline %s\ndata %d\n%s\n\n" % (path.encode(), len(data), data))
    subprocess.run(["git", "-C", str(ws.path), "fast-import", "--quiet"], input=stream,
                   check=True, capture_output=True)
    want = [(i, "failed" if i == rid(3) else s) for i, s in want]
    read.clear()
    again = await restart()
    assert len(read) == 500 + 1_000 and not again.cold
    await again.close()
    # A cache that does not hold what the older days hold is not used for them.
    cache = settings.spool_dir / ws.uid / "index.cache"
    kept = msgspec.msgpack.decode(cache.read_bytes(), type=IndexCache)
    less = [e for e in kept.entries if e.id != rid(0)]  # a run of the oldest day
    cache.write_bytes(msgspec.msgpack.encode(IndexCache(kept.tip, less)))
    read.clear()
    with caplog.at_level(logging.WARNING, logger="floom_git.runs"):
        again = await restart()
    assert len(read) == COLD and again.cold
    assert any("does not match floom/runs" in r.getMessage() for r in caplog.records)
    await again.close()


async def test_cold_start_lists_newest_runs_at_once_and_everything_after(aiohttp_client, settings):
    cold_workspace(settings)
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    resp = await client.get("/api/runs?limit=1")
    assert resp.headers["X-Total-Count"] == str(COLD)
    assert [r["id"] for r in await resp.json()] == [rid(COLD - 1)]
    resp = await client.get("/api/runs?worker_id=word-count&offset=2499")  # the whole index
    assert resp.headers["X-Total-Count"] == str(COLD)
    assert [r["id"] for r in await resp.json()] == [rid(0)]
    cache = settings.spool_dir / read_uid(settings.workspaces_dir / "default") / "index.cache"

    async def saved() -> bool:
        while not cache.exists():  # saved once the whole index is in, for the next start-up
            await asyncio.sleep(0.05)
        return True

    assert await asyncio.wait_for(saved(), DEADLINE)


async def test_the_server_log_has_one_line_when_a_run_starts_and_one_when_it_ends(
        aiohttp_client, settings, caplog):
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    with caplog.at_level(logging.INFO, logger="floom_git.runs"):
        rid = (await trigger(client, "word-count", {"text": "a b"}))["run_id"]
        run = await wait_run(client, rid)
    assert run["status"] == "completed"
    mine = [r.getMessage() for r in caplog.records if rid in r.getMessage()]
    assert mine == [f"run {rid} of default/word-count started",
                    f"run {rid} of default/word-count ended: completed"], mine

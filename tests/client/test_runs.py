"""`run` (live log stream, outputs, exit code from the status, --no-wait, typed inputs), `runs
list|show|logs|cancel` and `approvals list|approve|reject` against real runs of real workers."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from tests.conftest import AUTH
from tests.http.test_approvals import INPUTS, PROPOSER, approvals
from tests.http.test_runs import make_worker, wait_for, wait_run

ECHO = """import json
inputs = json.load(open("inputs.json"))
print("echoing", sorted(k for k in inputs))
json.dump({"status": "success", "outputs": {"echo": inputs}}, open("result.json", "w"))
"""
FAILS = """import sys
print("about to fail")
print("the disk is on fire", file=sys.stderr)
sys.exit(2)
"""
SLOW = """import time
print("first line", flush=True)
time.sleep(60)
"""
TYPED = ("    - {name: n, type: number}\n    - {name: flag, type: boolean}\n"
         "    - {name: note, type: string}\n")


@pytest.fixture
async def api(aiohttp_client, server):
    return await aiohttp_client(server, headers=AUTH)


async def test_run_streams_logs_prints_outputs_and_exits_0(cli, api):
    result = await cli("run", "word-count", "--input", "text=the workspace is a repo")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"words": 5, "lines": 1, "longest": "workspace"}
    assert "counted 5 words" in result.err and "completed" in result.err
    assert result.err.index("counted 5 words") < result.err.index("completed")


async def test_run_failed_exits_3_with_the_error(cli, api):
    await make_worker(api, "failer", FAILS)
    result = await cli("run", "failer")
    assert result.code == 3, result.err
    assert "about to fail" in result.err and "[warning] the disk is on fire" in result.err
    assert "failed" in result.err and "[execution_error]" in result.err
    as_json = await cli("run", "failer", "--json")
    assert as_json.code == 3 and as_json.json()["status"] == "failed"
    assert as_json.json()["error_code"] == "execution_error"


async def test_run_logs_arrive_while_the_run_is_running_and_cancel_exits_4(cli, api):
    await make_worker(api, "slow", SLOW)
    task, stderr = cli.start("run", "slow")

    async def streamed() -> bool:
        return "first line" in stderr.getvalue()

    await wait_for(streamed, "the first log line reaching the CLI")
    run_id = (await (await api.get("/api/runs", params={"worker_id": "slow"})).json())[0]["id"]
    assert (await (await api.get(f"/api/runs/{run_id}")).json())["status"] == "running"
    cancelled = await cli("runs", "cancel", run_id)
    assert cancelled.code == 0, cancelled.err
    result = await asyncio.wait_for(task, 30)
    assert result.code == 4, result.err
    assert f"run {run_id} is cancelled" in result.err


async def test_run_inputs_from_file_and_flags_are_typed_by_the_manifest(cli, api, tmp_path):
    await make_worker(api, "echo", ECHO, inputs=TYPED)
    (tmp_path / "in.json").write_text(json.dumps({"note": "from file", "n": 1, "extra": [1, 2]}))
    result = await cli("run", "echo", "--input-file", str(tmp_path / "in.json"), "-i", "n=42",
                       "-i", "flag=yes", "-i", "note=a=b", "--json")
    assert result.code == 0, result.err
    echo = result.json()["outputs"]["echo"]
    assert (echo["n"], echo["flag"], echo["note"], echo["extra"]) == (42, True, "a=b", [1, 2])
    from_stdin = await cli("run", "echo", "--input-file", "-", stdin='{"n": 2.5}')
    assert from_stdin.code == 0 and json.loads(from_stdin.out)["echo"]["n"] == 2.5


@pytest.mark.parametrize("args,message", [
    (("-i", "n=many"), "--input n: 'many' is not a number"),
    (("-i", "flag=perhaps"), "--input flag: 'perhaps' is not a boolean"),
    (("-i", "novalue"), "expected KEY=VALUE"),
    (("--input-file", "missing.json"), "--input-file missing.json"),
    (("--input-file", "-"), "not valid JSON"),
])
async def test_run_bad_inputs_are_refused_before_starting(
    cli, api, tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    await make_worker(api, "echo", ECHO, inputs=TYPED)
    result = await cli("run", "echo", *args, stdin="{nope")
    assert result.code == 1 and message in result.err
    assert await (await api.get("/api/runs", params={"worker_id": "echo"})).json() == []


async def test_run_missing_required_input_is_the_servers_message(cli):
    result = await cli("run", "word-count")
    assert result.code == 1 and "text" in result.err and "(HTTP 4" in result.err


async def test_run_no_wait_then_runs_show_logs_and_list(cli, api):
    started = await cli("run", "word-count", "-i", "text=one two", "--no-wait")
    assert started.code == 0, started.err
    run_id = started.out.strip()
    assert run_id.startswith("run_")
    await wait_run(api, run_id)

    shown = await cli("runs", "show", run_id)
    assert shown.code == 0 and "completed" in shown.out and '"words": 2' in shown.out
    assert (await cli("runs", "show", run_id, "--json")).json()["outputs"]["words"] == 2

    logs = await cli("runs", "logs", run_id)
    assert logs.code == 0 and "counted 2 words" in logs.out
    lines = (await cli("runs", "logs", run_id, "--json")).json()
    assert any(line["message"] == "counted 2 words" for line in lines)
    followed = await cli("runs", "logs", run_id, "--follow")
    assert followed.code == 0 and "counted 2 words" in followed.out
    ndjson = (await cli("runs", "logs", run_id, "--follow", "--json")).out.splitlines()
    assert any(json.loads(x)["message"] == "counted 2 words" for x in ndjson)

    listed = await cli("runs", "list", "--worker", "word-count")
    assert listed.code == 0 and run_id in listed.out
    assert [
        r["id"] for r in (await cli("runs", "list", "--json", "--status", "completed")).json()
    ] == [run_id]
    as_json = await cli("run", "word-count", "-i", "text=x", "--no-wait", "--json")
    assert as_json.json()["run_id"].startswith("run_")


async def test_runs_logs_level_filter(cli, api):
    await make_worker(api, "failer", FAILS)
    run_id = (await cli("run", "failer", "--no-wait")).out.strip()
    await wait_run(api, run_id)
    for extra in ((), ("--follow",)):
        result = await cli("runs", "logs", run_id, "--level", "warning", *extra)
        assert "the disk is on fire" in result.out and "about to fail" not in result.out


@pytest.mark.parametrize("command", [("runs", "show", "run_000000000000"),
                                     ("runs", "logs", "run_000000000000"),
                                     ("runs", "cancel", "run_000000000000")])
async def test_unknown_run_is_named(cli, command):
    result = await cli(*command)
    assert result.code == 1 and result.err == "error: run 'run_000000000000' not found\n"


async def test_approval_run_exits_5_then_approve_with_edited_output(cli, api):
    await make_worker(api, "mailer", PROPOSER, inputs=INPUTS, extra=approvals())
    result = await cli("run", "mailer", "-i", "to=Ada")
    assert result.code == 5, result.err
    assert "waits for approval apr_" in result.err and "preview: Hello Ada" in result.err
    pending = (await cli("approvals", "list", "--json")).json()
    assert len(pending) == 1 and pending[0]["status"] == "pending"
    listed = await cli("approvals", "list")
    assert pending[0]["id"] in listed.out and "Hello Ada" in listed.out

    approved = await cli("approvals", "approve", pending[0]["id"], "--edited-output",
                         '{"draft": "Hi Ada"}', "--annotation", "friendlier", "--wait")
    assert approved.code == 0, approved.err
    assert json.loads(approved.out) == {"sent": {"draft": "Hi Ada"}}
    assert (await cli("approvals", "list", "--json")).json() == []
    decided = (await cli("approvals", "list", "--status", "approved", "--json")).json()
    assert decided[0]["annotation"] == "friendlier"


async def test_reject_by_run_id_with_reason(cli, api, tmp_path):
    await make_worker(api, "mailer", PROPOSER, inputs=INPUTS, extra=approvals())
    run_id = (await cli("run", "mailer", "-i", "to=Bob", "--no-wait")).out.strip()
    await wait_run(api, run_id)
    rejected = await cli("approvals", "reject", run_id, "--reason", "not today", "--json")
    assert rejected.code == 0, rejected.err
    assert rejected.json()["status"] == "rejected"
    again = await cli("approvals", "reject", run_id)
    assert again.code == 1 and "(HTTP 409)" in again.err
    (tmp_path / "out.json").write_text("[1]")
    bad = await cli("approvals", "approve", "apr_000000000000", "--edited-output",
                    f"@{tmp_path / 'out.json'}")
    assert bad.code == 1 and "expected a JSON object" in bad.err
    missing = await cli("approvals", "approve", "apr_000000000000")
    assert missing.code == 1 and missing.err == "error: approval 'apr_000000000000' not found\n"


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
async def test_output_into_a_closed_pipe_ends_quietly(cli, api, base_env, ada, json_flag):
    """`floom-git runs logs R | head -1` on a long log."""
    await make_worker(api, "chatty", 'for i in range(4000):\n    print("line", i, "." * 60)\n')
    run_id = (await cli("run", "chatty", "--no-wait")).out.strip()
    await wait_run(api, run_id)
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "floom_git",
        "runs",
        "logs",
        run_id,
        *json_flag,
        env={**base_env, "FLOOM_TOKEN": ada},
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:  # `| head -1`: read a line, then go away
        assert (await asyncio.to_thread(reader.readline)).strip()
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and b"Traceback" not in err and b"Exception ignored" not in err

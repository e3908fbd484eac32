"""The reference's clients against the real server on a port: each test sends the requests a
command of the Floom Python CLI or Node CLI sends (paths, headers, bodies, query strings, Accept)
and reads back exactly the fields that command reads. Written from their documented behaviour
(REFERENCE.md §2-§3, the seeds and issue 13), not from their code:

- Python CLI (local server, `x-floom-secret`, routes at /): `floom reload` POSTs /workers/reload
  and prints `workers_loaded`; `floom worker create <dir>` POSTs {worker_yml, run_py} and prints
  the worker's `id` and `name`; `floom run <worker> k=v` POSTs {inputs, trigger_source} to
  /workers/{id}/runs, polls GET /runs/{run_id} until the status settles and prints `output`
  (or `error`), or for `pending_approval` the id and label of `approval_trail`.
- Node CLI (hosted style: /api prefix, `x-floom-token`, optional x-workeros-workspace):
  workers list/show/update, runs list/show, logs (Accept: application/json, a JSON array),
  approvals list/approve/reject with a `comment`, contexts (create with `sensitive`, files as
  JSON with Accept: application/json), workspaces list/select ({workspaces, active_id}).

Unknown fields in their bodies are the point: the reference ignores them, so must we.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from floom_git.http.keys import IDENTITY, MANAGER
from tests.conftest import SECRET, add_member, git, uid

TERMINAL = ("completed", "failed", "cancelled", "pending_approval")

APPROVAL_YML = """schema_version: "0.3"
name: send-offer
title: Send offer
description: Drafts an offer and waits for a person to approve it.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: to
      type: string
      required: true
approvals:
  required: true
  label: Send this offer?
"""
ECHO_YML = APPROVAL_YML.split("approvals:")[0].replace("name: send-offer", "name: echo-offer")
ECHO_PY = """import json
inputs = json.load(open("inputs.json"))
json.dump({"status": "success", "outputs": {"draft": "Hello " + inputs["to"]}},
          open("result.json", "w"))
"""
APPROVAL_PY = """import json
inputs = json.load(open("inputs.json"))
json.dump({"status": "success", "outputs": {"draft": "Hello " + inputs["to"],
          "decision": inputs["decision"]}}, open("result.json", "w"))
"""


class Client:
    """An HTTP client shaped like one of the reference's clients."""

    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
        self.session, self.base, self.headers = session, base, headers

    async def call(self, method: str, path: str, *, status: int | tuple[int, ...] = (200, 201),
                   accept: str | None = None, content_type: str | None = None, **kw: Any) -> Any:
        headers = dict(self.headers)
        if accept:
            headers["Accept"] = accept
        if content_type:
            headers["Content-Type"] = content_type
        async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.json(content_type=None) if resp.content_type.endswith("json") \
                else await resp.read()
            expected = status if isinstance(status, tuple) else (status,)
            assert resp.status in expected, f"{method} {path}: {resp.status} {body!r}"
            return body


@pytest.fixture
async def session():
    # Like the CLIs' HTTP stacks, keep cookies the server sets, also for an IP-address host.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        yield s


@pytest.fixture
def python_cli(server, session) -> Client:
    """The Python CLI talks to a local server at its root with the shared secret."""
    return Client(session, str(server.make_url("")).rstrip("/"), {"x-floom-secret": SECRET})


@pytest.fixture
def node_cli(server, session) -> Client:
    """The Node CLI uses the /api prefix and an API token in x-floom-token."""
    _, headers = add_member(server.app, "default", "member", "ada")
    return Client(
        session, str(server.make_url("/api")), {**headers, "x-workeros-workspace": "default"}
    )


async def poll_run(cli: Client, run_id: str, deadline: float = 20.0) -> dict:
    """What `floom run` does after starting a run: GET the run until its status settles."""
    end = time.monotonic() + deadline
    while True:
        run = await cli.call("GET", f"/runs/{run_id}")
        if run["status"] in TERMINAL or time.monotonic() > end:
            return run
        await asyncio.sleep(0.1)


# -- Python CLI ---------------------------------------------------------------------------------
async def test_python_cli_reload_prints_workers_loaded(python_cli):
    body = await python_cli.call("POST", "/workers/reload", json={})
    assert body["status"] == "success" and body["workers_loaded"] == 2


async def test_python_cli_worker_create_then_run_prints_output(python_cli):
    created = await python_cli.call("POST", "/workers", json={
        "worker_yml": ECHO_YML, "run_py": ECHO_PY, "skill_md": None})
    assert (created["id"], created["name"]) == ("echo-offer", "Send offer")
    started = await python_cli.call("POST", "/workers/echo-offer/runs",
                                    json={"inputs": {"to": "Ada"}, "trigger_source": "cli"})
    assert started["status"] in ("queued", "running") and started["run_id"].startswith("run_")
    run = await poll_run(python_cli, started["run_id"])
    assert run["status"] == "completed", run
    assert run["output"] == {"draft": "Hello Ada"} == run["outputs"]
    assert run["error"] is None and run["approval_trail"] is None


async def test_node_cli_workers_push_posts_or_puts(node_cli, settings):
    """`workers push`: POST the source; on 409 (it exists) PUT it to /workers/{id}."""
    body = {"worker_yml": ECHO_YML, "run_py": ECHO_PY}
    assert (await node_cli.call("POST", "/workers", json=body))["id"] == "echo-offer"
    await node_cli.call("POST", "/workers", json=body, status=409)
    edited = {"worker_yml": ECHO_YML.replace("version: 1.0.0", "version: 1.1.0"),
              "run_py": ECHO_PY.replace("Hello ", "Hi ")}
    shown = await node_cli.call("PUT", "/workers/echo-offer", json=edited)
    assert shown["version"] == "1.1.0" and "Hi " in shown["run_py_content"]
    repo = settings.workspaces_dir / "default"
    assert git(repo, "log", "-1", "--format=%s").strip() == "worker echo-offer: update source"
    other = await node_cli.call("PUT", "/workers/echo-offer", status=400, json={
        "worker_yml": ECHO_YML.replace("name: echo-offer", "name: other-name")})
    assert "must equal its folder name" in other["detail"]


async def test_python_cli_run_of_approval_worker_prints_approval_id(python_cli):
    await python_cli.call(
        "POST", "/workers", json={"worker_yml": APPROVAL_YML, "run_py": APPROVAL_PY}
    )
    started = await python_cli.call(
        "POST", "/workers/send-offer/runs", json={"inputs": {"to": "Ada"}}
    )
    run = await poll_run(python_cli, started["run_id"])
    assert run["status"] == "pending_approval"
    trail = run["approval_trail"]
    assert trail["id"].startswith("apr_") and trail["label"] == "Send this offer?"
    assert trail["status"] == "pending" and trail["decided_at"] is None
    assert set(trail) >= {"id", "status", "label", "preview", "created_at", "decided_at", "reason",
                          "follow_up_run_id"}


async def test_python_cli_run_failure_prints_error(python_cli):
    started = await python_cli.call("POST", "/workers/word-count/runs", json={"inputs": {}},
                                    status=400)
    assert started["detail"] == "Missing required inputs: text"


# -- Node CLI: workers --------------------------------------------------------------------------
async def test_node_cli_workers_list_and_show(node_cli):
    run = await node_cli.call(
        "POST", "/workers/word-count/runs", json={"inputs": {"text": "a b c"}}
    )
    await poll_run(node_cli, run["run_id"])
    listed = await node_cli.call("GET", "/workers?limit=50")
    item = next(w for w in listed if w["id"] == "word-count")
    assert item["name"] == "Word count" and item["status"] == "ready"
    assert item["trigger_type"] == "manual" and item["triggers"] == ["manual"]
    assert item["triggers_spec"] == [{"type": "manual", "cron": None, "timezone": None,
                                      "webhook": None, "composio": None, "label": "manual"}]
    assert item["last_run"]["id"] == run["run_id"] and item["last_run"]["status"] == "completed"
    assert item["recent_stats"]["runs_7d"] == 1 and item["recent_stats"]["success_rate_7d"] == 1.0
    assert item["permissions"] == {"is_owner": False, "can_view": True, "can_edit": True,
                                   "can_run": True, "can_delete": True, "can_share": True}
    shown = await node_cli.call("GET", "/workers/word-count")
    assert shown["config"]["name"] == "word-count"
    assert shown["config"]["triggers"] == [{"type": "manual", "cron": None, "timezone": None,
                                            "every": None, "at": None, "webhook": None,
                                            "composio": None}]
    assert [r["id"] for r in shown["recent_runs"]] == [run["run_id"]]
    assert shown["stats"]["total_runs"] == 1 and shown["stats"]["total_cost_usd"] == 0.0
    assert shown["missing_connections"] == [] and shown["contexts"] == []
    assert shown["run_py_content"].startswith('"""Count words')


async def test_node_cli_workers_update_settings_in_one_commit(node_cli, settings):
    repo = settings.workspaces_dir / "default"
    before = git(repo, "rev-parse", "main").strip()
    shown = await node_cli.call("PATCH", "/workers/word-count", json={
        "trigger_type": "cron", "cron_expr": "0 9 * * 1-5", "cron_timezone": "Europe/Berlin",
        "input_values": {"text": "daily"}, "enabled": False, "starred": True,
        "capabilities": {"network": {"egress": False}}})  # a field this server does not know
    assert shown["triggers"] == ["schedule: 0 9 * * 1-5 (Europe/Berlin)"]
    assert shown["input_values"] == {"text": "daily"} and shown["enabled"] is False
    assert shown["starred"] is True
    assert git(repo, "rev-list", "--count", f"{before}..main").strip() == "1"
    assert git(repo, "log", "-1", "--format=%s").strip() == \
        "worker word-count: update enabled, input_values, triggers"
    manifest = (repo / "workers/word-count/worker.yml").read_text()
    assert "paused: true" in manifest and "cron: 0 9 * * 1-5" in manifest
    resumed = await node_cli.call("PATCH", "/workers/word-count", json={"enabled": True})
    assert resumed["enabled"] is True and resumed["status"] == "ready"


async def test_node_cli_workers_update_type_error_is_400(node_cli):
    body = await node_cli.call("PATCH", "/workers/word-count", json={"enabled": "yes"}, status=400)
    assert body["detail"] == "request body: Expected `bool | null`, got `str` - at `$.enabled`"


# -- Node CLI: runs and logs --------------------------------------------------------------------
async def test_node_cli_runs_list_show_and_logs(node_cli):
    started = await node_cli.call("POST", "/workers/word-count/runs",
                                  json={"inputs": {"text": "one two three"}})
    run = await poll_run(node_cli, started["run_id"])
    listed = await node_cli.call("GET", "/runs?worker_id=word-count&limit=20")
    assert [(r["id"], r["status"]) for r in listed] == [(run["id"], "completed")]
    assert {"id", "worker_id", "worker_name", "status", "created_at", "duration_ms"} <= set(
        listed[0]
    )
    assert run["output"] == {"words": 3, "lines": 1, "longest": "three"}
    assert run["input"] == run["inputs"] == {"text": "one two three", "min_length": 1}
    assert run["tool_calls"] == [] and run["artifacts"] == []
    assert "counted 3 words" in [ln["message"] for ln in run["logs"]]
    assert run["logs_url"] == f"/api/runs/{run['id']}/logs" and run["logs_truncated"] is False
    lines = await node_cli.call("GET", f"/runs/{run['id']}/logs", accept="application/json")
    assert ("info", "counted 3 words") in [(ln["level"], ln["message"]) for ln in lines]
    assert len(lines) == run["log_count"] and all(ln["timestamp"] for ln in lines)
    capped = await node_cli.call("GET", "/runs?limit=500")
    assert len(capped) == 1


# -- Node CLI: approvals ------------------------------------------------------------------------
async def test_node_cli_approvals_approve_and_reject_with_comment(node_cli):
    await node_cli.call(
        "POST", "/workers", json={"worker_yml": APPROVAL_YML, "run_py": APPROVAL_PY}
    )
    first = await poll_run(node_cli, (await node_cli.call(
        "POST", "/workers/send-offer/runs", json={"inputs": {"to": "Ada"}}))["run_id"])
    second = await poll_run(node_cli, (await node_cli.call(
        "POST", "/workers/send-offer/runs", json={"inputs": {"to": "Bob"}}))["run_id"])
    pending = await node_cli.call("GET", "/approvals")
    assert {a["run_id"] for a in pending} == {first["id"], second["id"]}
    assert all(
        a["worker_name"] == "Send offer" and a["label"] == "Send this offer?" for a in pending
    )
    assert (await node_cli.call("GET", "/approvals/count")) == {"pending": 2}
    approved = await node_cli.call("POST", f"/runs/{first['id']}/approve",
                                   json={"comment": "looks good"})
    assert approved["status"] == "approved" and approved["run_id"].startswith("run_")
    follow = await poll_run(node_cli, approved["run_id"])
    assert follow["output"]["decision"] == "approved"
    trail = (await node_cli.call("GET", f"/runs/{first['id']}"))["approval_trail"]
    assert trail["status"] == "approved" and trail["annotation"] == "looks good"
    assert trail["follow_up_run_id"] == approved["run_id"]
    rejected = await node_cli.call("POST", f"/runs/{second['id']}/reject",
                                   json={"comment": "wrong person"})
    assert rejected["status"] == "rejected"
    trail = (await node_cli.call("GET", f"/runs/{second['id']}"))["approval_trail"]
    assert trail["status"] == "rejected" and trail["reason"] == "wrong person"


# -- Node CLI: contexts -------------------------------------------------------------------------
async def test_node_cli_contexts_create_sensitive_and_read_files_as_json(node_cli, settings):
    created = await node_cli.call("POST", "/contexts/pricing",
                                  json={"sensitive": True, "category": "sales", "writeable": False})
    assert created["name"] == "pricing" and created["sensitive"] is True
    assert (
        "sensitive: true"
        in (settings.workspaces_dir / "default/contexts/pricing/context.yml").read_text()
    )
    await node_cli.call("PUT", "/contexts/pricing/files/plans.md", json={"content": "# Plans\n"})
    await node_cli.call("PUT", "/contexts/pricing/files/logo.bin", data=b"\x89PNG\x00\x01",
                        content_type="application/octet-stream")
    names = [c["name"] for c in await node_cli.call("GET", "/contexts")]
    assert names == ["company", "pricing"]
    text = await node_cli.call("GET", "/contexts/pricing/files/plans.md", accept="application/json")
    assert text == {"path": "plans.md", "content": "# Plans\n", "is_binary": False,
                    "encoding": "utf-8", "size": 8, "content_type": "text/markdown"}
    binary = await node_cli.call(
        "GET", "/contexts/pricing/files/logo.bin", accept="application/json"
    )
    assert binary["is_binary"] is True and binary["encoding"] == "base64" and binary["size"] == 6
    raw = await node_cli.call("GET", "/contexts/pricing/files/plans.md")
    assert raw == b"# Plans\n"


# -- Node CLI: workspaces -----------------------------------------------------------------------
async def test_node_cli_workspaces_list_and_select(node_cli, server, session):
    await server.app[MANAGER].create("second")
    user = server.app[IDENTITY].users.find("ada")
    server.app[IDENTITY].members.add(uid(server.app, "second"), user.id, "member")
    cookie_cli = Client(
        session, node_cli.base, {"x-floom-token": node_cli.headers["x-floom-token"]}
    )
    listed = await cookie_cli.call("GET", "/workspaces")
    assert listed["active_id"] == "default"
    assert [(w["id"], w["active"]) for w in listed["workspaces"]] == [("default", True),
                                                                      ("second", False)]
    selected = await cookie_cli.call("POST", "/workspaces/second/select")
    assert selected["id"] == "second" and selected["active"] is True
    listed = await cookie_cli.call("GET", "/workspaces")  # the session keeps the cookie
    assert listed["active_id"] == "second"

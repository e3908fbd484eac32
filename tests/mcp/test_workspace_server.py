"""The workspace MCP server over streamable HTTP, driven by the official SDK client: every built-in
tool, registered worker tools, progress notifications, and the same credentials and role checks
as the REST routes the tools mirror (a viewer cannot create workers or trigger runs)."""

from __future__ import annotations

import asyncio

import pytest
from mcp.shared.exceptions import MCPError

from floom_git.http.app import create_app
from floom_git.schemas.tools import BUILTIN_TOOL_NAMES
from tests.conftest import AUTH, add_member, commit_count, git
from tests.http.test_approvals import INPUTS, PROPOSER, approvals
from tests.http.test_runs import make_worker, wait_run
from tests.mcp.conftest import mcp_session, payload

SLOW = "import time\ntime.sleep(60)\n"
NEW_WORKER = """schema_version: "0.3"
name: greeter
title: Greeter
description: Says hello.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - {name: who, type: string, required: true, description: whom to greet}
  outputs:
    - {name: greeting, type: string}
"""
GREET = """import json
who = json.load(open("inputs.json"))["who"]
json.dump({"status": "success", "outputs": {"greeting": "Hello " + who}}, open("result.json", "w"))
"""


@pytest.fixture
def roles(client) -> dict[str, dict[str, str]]:
    app = client.server.app
    return {role: add_member(app, "default", role, f"{role}-user")[1]
            for role in ("viewer", "member", "admin")}


async def call_ok(session, name: str, args: dict | None = None, **kw):
    result = await session.call_tool(name, args or {}, **kw)
    assert not result.is_error, result.content[0].text
    return payload(result)


async def call_refused(session, name: str, args: dict) -> dict:
    result = await session.call_tool(name, args)
    assert result.is_error, result
    return payload(result)


async def test_list_tools_builtin_tools_have_object_schemas(client):
    async with mcp_session(client, AUTH) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
    assert set(tools) == set(BUILTIN_TOOL_NAMES)
    for tool in tools.values():
        assert tool.description and tool.input_schema["type"] == "object"
    assert tools["run_worker"].input_schema["required"] == ["worker_id"]
    assert "$defs" in tools["save_worker"].input_schema  # FileIn of files[]


async def test_workers_tools_list_get_save_update(client, ws_path):
    async with mcp_session(client, AUTH) as s:
        listed = await call_ok(s, "list_workers", {"q": "word"})
        assert [w["id"] for w in listed["workers"]] == ["word-count"] and listed["total"] == 1
        detail = await call_ok(s, "get_worker", {"worker_id": "word-count"})
        assert detail["id"] == "word-count" and detail["inputs"][0]["name"] == "text"

        before = commit_count(ws_path)
        saved = await call_ok(s, "save_worker", {"worker_yml": NEW_WORKER, "run_py": GREET})
        assert saved["created"] is True and saved["worker"]["id"] == "greeter"
        assert commit_count(ws_path) == before + 1
        updated = NEW_WORKER.replace("Says hello.", "Says hello politely.")
        saved = await call_ok(s, "save_worker", {
            "worker_yml": updated, "run_py": GREET,
            "files": [{"path": "README.md", "content": "# greeter\n"}]})
        assert saved["created"] is False
        assert commit_count(ws_path) == before + 2
        assert "worker greeter: replace files" in git(ws_path, "log", "-1", "--format=%s")
        missing = await call_refused(s, "get_worker", {"worker_id": "nope-nope"})
    assert missing == {"detail": "Worker not found", "code": "not_found"}
    rest = await (await client.get("/api/workers/greeter")).json()
    assert rest["description"] == "Says hello politely."
    assert sorted(f["path"] for f in rest["files"]) == ["README.md", "run.py", "worker.yml"]


async def test_run_worker_waits_with_progress_notifications(client):
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done, total, message):
        progress.append((done, message))

    async with mcp_session(client, AUTH) as s:
        result = await call_ok(s, "run_worker", {"worker_id": "word-count",
                                                 "inputs": {"text": "one two three"}},
                               progress_callback=on_progress)
        assert result["status"] == "completed"
        assert result["outputs"] == {"words": 3, "lines": 1, "longest": "three"}
        messages = [m for _, m in progress]
        assert messages[0] == "status: queued" and messages[-1] == "status: completed"
        assert "[info] counted 3 words" in messages
        assert [d for d, _ in progress] == sorted(d for d, _ in progress)  # increasing

        run = await call_ok(s, "get_run", {"run_id": result["run_id"]})
        assert run["status"] == "completed" and run["trigger_source"] == "mcp" and run["logs"] == []
        run = await call_ok(s, "get_run", {"run_id": result["run_id"], "include_logs": True})
        assert any(line["message"] == "counted 3 words" for line in run["logs"])
        logs = await call_ok(s, "get_run_logs", {"run_id": result["run_id"], "level": "info"})
        assert "counted 3 words" in [line["message"] for line in logs["logs"]]
        runs = await call_ok(s, "list_runs", {"worker_id": "word-count"})
        assert runs["total"] == 1 and runs["runs"][0]["id"] == result["run_id"]

        bad = await call_refused(s, "run_worker", {"worker_id": "word-count", "inputs": {}})
        assert bad["code"] == "invalid_input" and "Missing required inputs: text" in bad["detail"]
        bad = await call_refused(s, "run_worker", {"worker_id": "word-count", "wait": "soon"})
        assert bad["code"] == "invalid_input" and "$.wait" in bad["detail"]


async def test_run_worker_without_wait_and_timed_out_wait(client):
    await make_worker(client, "sleeper", SLOW)
    async with mcp_session(client, AUTH) as s:
        queued = await call_ok(s, "run_worker", {"worker_id": "word-count", "wait": False,
                                                 "inputs": {"text": "x"}})
        assert queued["status"] == "queued" and queued["outputs"] is None
        timed_out = await call_ok(s, "run_worker", {"worker_id": "sleeper", "timeout_seconds": 0.3})
    assert timed_out["timed_out"] is True and timed_out["status"] in ("queued", "running")
    resp = await client.post(f"/api/runs/{timed_out['run_id']}/cancel")
    assert resp.status == 200
    assert (await wait_run(client, queued["run_id"]))["status"] == "completed"


async def test_approvals_list_and_resolve_through_mcp(client):
    await make_worker(client, "mailer", PROPOSER, inputs=INPUTS, extra=approvals())
    async with mcp_session(client, AUTH) as s:
        first = await call_ok(s, "run_worker", {"worker_id": "mailer", "inputs": {"to": "Ada"}})
        assert first["status"] == "pending_approval"
        assert first["approval"]["label"] == "Send the email?"
        second = await call_ok(s, "run_worker", {"worker_id": "mailer", "inputs": {"to": "Bob"}})
        pending = await call_ok(s, "list_approvals", {})
        assert pending["total"] == 2
        approved = await call_ok(s, "resolve_approval", {
            "approval_id": first["approval"]["id"], "decision": "approve",
            "edited_output": {"draft": "Hi Ada"}})
        assert approved["status"] == "approved" and approved["run_id"] == first["run_id"]
        rejected = await call_ok(s, "resolve_approval", {"run_id": second["run_id"],
                                                         "decision": "reject", "reason": "no"})
        assert rejected == {"status": "rejected", "run_id": second["run_id"]}
        again = await call_refused(s, "resolve_approval", {"run_id": second["run_id"],
                                                           "decision": "approve"})
        assert again["code"] == "conflict"
        both = await call_refused(s, "resolve_approval", {"run_id": "x", "approval_id": "y",
                                                          "decision": "approve"})
        assert both["detail"] == "give exactly one of approval_id and run_id"
        assert (await call_ok(s, "list_approvals", {}))["total"] == 0
    follow = await wait_run(client, approved["follow_up_run_id"])
    assert follow["outputs"] == {"sent": {"draft": "Hi Ada"}}
    assert (await wait_run(client, second["run_id"]))["error_code"] == "approval_rejected"


async def test_contexts_list_and_read(client):
    async with mcp_session(client, AUTH) as s:
        listed = await call_ok(s, "list_contexts")
        assert [c["name"] for c in listed["contexts"]] == ["company"]
        pack = await call_ok(s, "read_context", {"name": "company"})
        assert "about.md" in [f["path"] for f in pack["files"]]
        file = await call_ok(s, "read_context", {"name": "company", "path": "about.md"})
        assert file["encoding"] == "utf-8" and file["content"]
        missing = await call_refused(s, "read_context", {"name": "company", "path": "nope.md"})
    expected = await (await client.get("/api/contexts/company/files/about.md")).text()
    assert file["content"] == expected
    assert missing["code"] == "not_found"


async def test_issues_create_list_comment_close(client, ws_path):
    async with mcp_session(client, AUTH) as s:
        issue = await call_ok(s, "create_issue", {"title": "Flaky run", "body": "It failed twice.",
                                                  "labels": ["bug"]})
        assert issue["id"] == "ISSUE-0001" and issue["status"] == "open"
        comment = await call_ok(s, "comment_issue", {"issue_id": "ISSUE-0001", "body": "Seen it."})
        assert comment["body"] == "Seen it."
        closed = await call_ok(s, "close_issue", {"issue_id": "ISSUE-0001", "comment": "Fixed."})
        assert closed["status"] == "closed"
        listed = await call_ok(s, "list_issues", {"status": "closed"})
        assert [i["id"] for i in listed["issues"]] == ["ISSUE-0001"]
        assert listed["issues"][0]["comment_count"] == 2
        assert (await call_ok(s, "list_issues", {"status": "open"}))["issues"] == []
        bad = await call_refused(s, "comment_issue", {"issue_id": "nope", "body": "x"})
    assert bad == {
        "detail": "Invalid issue id: 'nope' (expected ISSUE-NNNN)",
        "code": "invalid_input",
    }
    detail = await (await client.get("/api/workspace/issues/ISSUE-0001")).json()
    assert [c["body"] for c in detail["comments"]] == ["Seen it.", "Fixed."]


async def test_registered_worker_tool_schema_and_outputs(client):
    resp = await client.post(
        "/api/mcp-tools",
        json={
            "name": "count_words",
            "worker_id": "word-count",
            "description": "Count words of a text",
        },
    )
    assert resp.status == 201, await resp.text()
    await make_worker(client, "broken", "raise SystemExit(3)\n")
    resp = await client.post("/api/mcp-tools", json={"name": "broken_tool", "worker_id": "broken"})
    assert resp.status == 201
    async with mcp_session(client, AUTH, path="/mcp-tools/serve") as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        tool = tools["count_words"]
        assert tool.description == "Count words of a text"
        assert tool.input_schema == {
            "type": "object", "required": ["text"],
            "properties": {"text": {"type": "string", "description": "The text to count."},
                           "min_length": {"type": "number", "default": 1,
                                          "description": "Ignore words shorter than this."}}}
        result = await s.call_tool("count_words", {"text": "a bb ccc"})
        assert not result.is_error
        assert result.structured_content == {"words": 3, "lines": 1, "longest": "ccc"}
        failed = await s.call_tool("broken_tool", {})
        assert failed.is_error
        assert payload(failed)["detail"] == "The process exited with code 3"
        assert payload(failed)["error_code"] == "execution_error"
        with pytest.raises(MCPError, match="Unknown tool: nothing_here"):
            await s.call_tool("nothing_here", {})


async def test_viewer_reads_but_cannot_create_workers_or_trigger_runs(client, roles, ws_path):
    await client.post("/api/mcp-tools", json={"name": "count_words", "worker_id": "word-count"})
    before = commit_count(ws_path)
    async with mcp_session(client, roles["viewer"]) as s:
        assert (await call_ok(s, "list_workers"))["total"] == 2
        for name, args in (("save_worker", {"worker_yml": NEW_WORKER, "run_py": GREET}),
                           ("run_worker", {"worker_id": "word-count", "inputs": {"text": "x"}}),
                           ("count_words", {"text": "x"}),
                           ("create_issue", {"title": "nope"}),
                           ("resolve_approval", {"run_id": "run_x", "decision": "approve"})):
            refused = await call_refused(s, name, args)
            assert refused == {
                "code": "forbidden",
                "detail": "Requires the member role in workspace default; you are viewer",
            }
        assert (await call_ok(s, "list_runs"))["total"] == 0
    assert commit_count(ws_path) == before
    async with mcp_session(client, roles["member"]) as s:
        run = await call_ok(s, "run_worker", {"worker_id": "word-count", "inputs": {"text": "x"}})
    assert run["status"] == "completed"


async def test_mcp_endpoint_needs_credentials_and_membership(client, anon):
    app = client.server.app
    _, outsider = add_member(app, "default", None, "outsider")
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    resp = await anon.post("/mcp", json=init, headers=accept)
    assert resp.status == 401 and "detail" in await resp.json()
    resp = await anon.post("/mcp", json=init, headers={**accept, **outsider})
    assert resp.status == 403
    resp = await anon.post("/mcp", json=init, headers={**accept, **AUTH, "Origin": "http://evil.example"})
    assert resp.status == 403
    resp = await anon.post("/api/v1/mcp", json=init, headers={**accept, **AUTH})
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert '"serverInfo":{"name":"floom-git"' in (await resp.text()).replace(" ", "")


async def test_mcp_sdk_refusal_is_labelled_text(client):
    """The SDK's own refusals (transport security) carry no Content-Type; they are text."""
    accept = {"Accept": "application/json, text/event-stream"}
    resp = await client.post(
        "/mcp", data=b"{}", headers={**accept, **AUTH, "Content-Type": "text/csv"}
    )
    assert resp.status == 400 and resp.content_type == "text/plain"
    assert await resp.text() == "Invalid Content-Type header"
    resp = await client.post("/mcp", data=b"{}", headers={**accept, **AUTH, "Host": "evil.example",
                                                           "Content-Type": "application/json"})
    assert resp.status == 421 and resp.content_type == "text/plain"


async def test_mcp_acts_in_the_selected_workspace(client):
    resp = await client.post("/api/workspaces", json={"id": "second"})
    assert resp.status == 201, await resp.text()
    await make_worker(client, "only-default", "print(1)\n")
    async with mcp_session(client, {**AUTH, "x-workeros-workspace": "second"}) as s:
        ids = [w["id"] for w in (await call_ok(s, "list_workers"))["workers"]]
    assert "only-default" not in ids and "word-count" in ids


async def test_shutdown_ends_an_open_mcp_call_promptly(aiohttp_client, settings):
    """A client waiting on run_worker must not hold the server's shutdown (aiohttp waits up to
    60 s for open requests): the session manager stops when shutdown begins."""
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    await make_worker(client, "sleeper", SLOW)
    running = asyncio.Event()

    async def on_progress(done, total, message):
        if message == "status: running":
            running.set()

    async def call() -> None:
        async with mcp_session(client, AUTH) as s:
            await s.call_tool("run_worker", {"worker_id": "sleeper", "timeout_seconds": 600},
                              progress_callback=on_progress)

    pending = asyncio.create_task(call())
    await asyncio.wait_for(running.wait(), 30)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await client.close()
    assert loop.time() - began < 20
    done, _ = await asyncio.wait([pending], timeout=30)
    assert done and pending.exception() is not None  # the client saw the server go away


async def test_client_gone_mid_call_leaves_the_server_serving(client):
    """A client that drops the connection while run_worker waits: the run goes on, the server
    keeps answering, and no handler error is left behind."""
    import aiohttp

    await make_worker(client, "sleeper", SLOW)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "run_worker", "arguments": {"worker_id": "sleeper", "timeout_seconds": 600},
        "_meta": {"progressToken": "p1"}}}
    headers = {**AUTH, "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(client.make_url("/mcp"), json=call, headers=headers)
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        first = b""
        while b"status: queued" not in first:
            first += await resp.content.readline()
        resp.close()
    async with mcp_session(client, AUTH) as s:
        assert (await call_ok(s, "list_workers"))["total"] == 3
    runs = await (await client.get("/api/runs?worker_id=sleeper")).json()
    assert len(runs) == 1 and runs[0]["status"] in ("queued", "running")
    assert (await client.post(f"/api/runs/{runs[0]['id']}/cancel")).status == 200

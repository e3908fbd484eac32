"""Agent workers using their connections, through the real API: the fake LLM server scripted to
call `<label>__<tool>`, the SDK-built MCP server answering. What the model is offered and gets
back, what the run records (tool_calls with the connection id, logs.ndjson, live SSE, floom/runs,
the connection's activity), remote errors and timeouts as error results, a connection that cannot
open, credentials kept to their server, cancel mid-call, and resuming after an approval across a
restart."""

from __future__ import annotations

import asyncio
import json

import pytest

from floom_git.http.app import create_app
from tests.conftest import AUTH, add_member, git
from tests.fakes.llm_server import FakeLLM, call, calls
from tests.http.agent_helpers import configure, make_agent
from tests.http.test_runs import committed, trigger, wait_run
from tests.remote_mcp_server import remote_server  # noqa: F401  (fixture)

TOKEN = "docs-token-0f3c9a7e"
USES_DOCS = "connections:\n  - mcp: {{label: docs, allowed_tools: [{tools}]}}\n"


@pytest.fixture
def settings(settings):
    return settings.replace(allow_private_mcp_urls=True, agent_stall_seconds=60,
                            sse_keepalive_seconds=0.2)


@pytest.fixture
def admin(client) -> dict[str, str]:
    return add_member(client.server.app, "default", "admin", "root")[1]


async def connect(client, admin, url: str, secret: str | None = None, **extra) -> dict:
    """Register connection `docs` (bearer DOCS_TOKEN when `secret` is given)."""
    body = {"label": "docs", "url": url, **extra}
    if secret is not None:
        resp = await client.post("/api/secrets/DOCS_TOKEN", json={"value": secret}, headers=admin)
        assert resp.status == 200, await resp.text()
        body["auth"] = {"type": "bearer", "secret": "DOCS_TOKEN"}
    resp = await client.post("/api/connections/mcp", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def finish(summary: str = "done"):
    return call("finish_with_outputs", {"outputs": {"summary": summary}})


def offered(llm: FakeLLM, index: int = 0) -> list[str]:
    return [t["function"]["name"] for t in llm.requests[index].body["tools"]]


def tool_answers(llm: FakeLLM, index: int) -> list[str]:
    return [m["content"] for m in llm.requests[index].body["messages"] if m["role"] == "tool"]


def held_sessions() -> list[asyncio.Task]:
    """Tasks still holding a session with a remote MCP server."""
    return [t for t in asyncio.all_tasks() if not t.done()
            and getattr(t.get_coro(), "__qualname__", "") == "RemoteSession._hold"]


async def sse_until(client, path: str, want) -> list[dict]:
    """The data of the SSE frames of `path` up to the first for which `want(data)` holds."""
    seen: list[dict] = []
    async with client.get(path) as resp:
        assert resp.status == 200
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if want(seen[-1]):
                    return seen
    raise AssertionError(f"the stream ended without the frame: {seen}")


async def test_agent_calls_a_remote_tool_and_every_record_shows_it(client, admin, ws_path,
                                                                   llm: FakeLLM, remote_server):  # noqa: F811
    remote_server.tokens = {TOKEN}
    conn = await connect(client, admin, remote_server.url, TOKEN)
    await configure(client.server.app, llm)
    await make_agent(client, "adder", extra=USES_DOCS.format(tools="add, fail"))
    llm.script(call("docs__add", {"a": 2, "b": 40}), finish("42"))
    rid = (await trigger(client, "adder", {"topic": "sums"}))["run_id"]
    run = await wait_run(client, rid)
    assert (run["status"], run["outputs"]) == ("completed", {"summary": "42"}), run
    first = run["tool_calls"][0]
    assert first["name"] == "docs__add" and first["arguments"] == {"a": 2, "b": 40}
    assert first["result"] == {"result": 42} and first["error_code"] is None
    assert first["connection_id"] == conn["id"] and first["duration_ms"] >= 0
    assert run["tool_calls"][1]["connection_id"] is None  # a built-in tool
    assert {"docs__add", "docs__fail"} <= set(offered(llm))
    assert tool_answers(llm, 1) == ['{"result": 42}']  # the result reached the model
    assert held_sessions() == []  # the session closed with the run

    record = await committed(ws_path, rid, "completed")
    assert record["tool_calls"][0]["connection_id"] == conn["id"]
    assert record["tool_calls"][0]["result"] == {"result": 42}
    folder = record["_path"].rsplit("/", 1)[0]
    logged = [json.loads(x)["event"] for x in
              git(ws_path, "show", f"floom/runs:{folder}/logs.ndjson").splitlines()]
    calls_logged = [e for e in logged if e and e["type"] == "tool_call"]
    assert calls_logged[0]["connection_id"] == conn["id"]
    parts = await sse_until(client, f"/api/runs/{rid}/stream", lambda d: d["type"] == "finish")
    results = [p for p in parts if p["type"] == "tool-result"]
    assert results[0]["name"] == "docs__add" and results[0]["connection_id"] == conn["id"]

    activity = await (await client.get(f"/api/connections/{conn['id']}/activity")).json()
    assert [(r["run_id"], r["worker_id"], r["calls"], r["errors"]) for r in activity["runs"]] == [
        (rid, "adder", 1, 0)]


async def test_tools_outside_allowed_tools_are_not_offered_and_calls_to_them_are_unknown(
        client, admin, llm: FakeLLM, remote_server):  # noqa: F811
    await connect(client, admin, remote_server.url, allowed_tools=["add", "echo", "fail"])
    await configure(client.server.app, llm)
    await make_agent(client, "picky", extra=USES_DOCS.format(tools="add, slow"))
    llm.script(calls(("docs__echo", {"text": "hi"}), ("docs__slow", {"seconds": 0})), finish())
    run = await wait_run(client, (await trigger(client, "picky", {"topic": "t"}))["run_id"])
    assert run["status"] == "completed", run
    # echo: the connection allows it, the worker does not; slow: the other way round
    assert [n for n in offered(llm) if n.startswith("docs__")] == ["docs__add"]
    assert [(c["name"], c["error_code"]) for c in run["tool_calls"]] == [
        ("docs__echo", "unknown_tool"), ("docs__slow", "unknown_tool"),
        ("finish_with_outputs", None)]


@pytest.fixture
def quick_calls(settings):
    return settings.replace(mcp_call_timeout_seconds=3.0)


async def test_remote_errors_and_timeouts_are_error_results_and_the_run_goes_on(
        aiohttp_client, quick_calls, llm: FakeLLM, remote_server):  # noqa: F811
    client = await aiohttp_client(create_app(quick_calls), headers=AUTH)
    admin = add_member(client.server.app, "default", "admin", "root")[1]
    conn = await connect(client, admin, remote_server.url)
    await configure(client.server.app, llm)
    await make_agent(client, "brave", extra=USES_DOCS.format(tools="fail, slow, add"))
    llm.script(call("docs__fail", {"message": "the index is down"}),
               call("docs__slow", {"seconds": 60}), call("docs__add", {"a": 1, "b": 1}), finish())
    began = asyncio.get_running_loop().time()
    run = await wait_run(client, (await trigger(client, "brave", {"topic": "t"}))["run_id"])
    assert asyncio.get_running_loop().time() - began < 30  # the slow tool was not waited for
    assert run["status"] == "completed", run
    codes = [(c["name"], c["error_code"], c["connection_id"]) for c in run["tool_calls"]]
    assert codes == [
        ("docs__fail", "tool_error", conn["id"]),
        ("docs__slow", "tool_timeout", conn["id"]),
        ("docs__add", None, conn["id"]),
        ("finish_with_outputs", None, None),
    ]
    assert run["tool_calls"][0]["error"].endswith("the index is down")
    assert "timed out after 3s" in run["tool_calls"][1]["error"]
    assert tool_answers(llm, 1) == [f"Error: {run['tool_calls'][0]['error']}"]
    assert tool_answers(llm, 2)[-1].startswith("Error: slow timed out after 3s")
    assert tool_answers(llm, 3)[-1] == '{"result": 2}'  # the same session still answers
    activity = await (await client.get(f"/api/connections/{conn['id']}/activity")).json()
    assert activity["runs"][0]["calls"] == 3 and activity["runs"][0]["errors"] == 2


async def test_a_connection_that_cannot_open_fails_the_run_before_the_model_is_called(
        client, admin, llm: FakeLLM):
    await connect(client, admin, "http://127.0.0.1:9/mcp")  # nothing listens there
    await configure(client.server.app, llm)
    await make_agent(client, "stranded", extra=USES_DOCS.format(tools="add"))
    run = await wait_run(client, (await trigger(client, "stranded", {"topic": "t"}))["run_id"])
    assert (run["status"], run["error_code"]) == ("failed", "connection_failed"), run
    assert run["error"].startswith("Connection docs: ")
    assert any(line["message"] == run["error"] for line in run["logs"])
    assert llm.requests == []


async def test_a_worker_missing_a_connection_is_refused_at_trigger(client, llm: FakeLLM):
    """Its status says missing_connection; a trigger answers 409 instead of queueing a run
    that could only fail (as for an agent that needs setup)."""
    await configure(client.server.app, llm)
    await make_agent(client, "orphan", extra=USES_DOCS.format(tools="add"))
    worker = await (await client.get("/api/workers/orphan")).json()
    assert worker["status"] == "missing_connection" and worker["missing_connections"] == [
        "mcp:docs"
    ]
    resp = await client.post("/api/workers/orphan/runs", json={"inputs": {"topic": "t"}})
    assert resp.status == 409, await resp.text()
    detail = (await resp.json())["detail"]
    assert detail.startswith("Worker orphan is missing connections: mcp:docs"), detail
    assert (await (await client.get("/api/runs?worker_id=orphan")).json()) == []
    assert llm.requests == []


async def test_connection_secret_goes_only_to_its_server_and_is_redacted_everywhere(
        client, admin, ws_path, llm: FakeLLM, remote_server):  # noqa: F811
    remote_server.tokens = {TOKEN}
    conn = await connect(client, admin, remote_server.url, TOKEN)
    await configure(client.server.app, llm)
    await make_agent(client, "nosy", extra=USES_DOCS.format(tools="whoami, fail"))
    # A server that echoes the credential back, in a result and in an error.
    llm.script(calls(("docs__whoami", {}), ("docs__fail", {"message": f"bad token {TOKEN}"})),
               finish())
    rid = (await trigger(client, "nosy", {"topic": "t"}))["run_id"]
    run = await wait_run(client, rid)
    assert run["status"] == "completed", run
    assert run["tool_calls"][0]["result"] == {"result": "Bearer <REDACTED:DOCS_TOKEN>"}
    assert set(remote_server.seen_auth) == {f"Bearer {TOKEN}"}  # every request to its server
    # The model never got it back from the server (the `fail` arguments are its own words).
    assert TOKEN not in json.dumps(tool_answers(llm, 1))
    assert all(TOKEN not in json.dumps(seen.headers) for seen in llm.requests)
    record = await committed(ws_path, rid, "completed")
    folder = record["_path"].rsplit("/", 1)[0]
    everything = json.dumps(run) + git(ws_path, "show", f"floom/runs:{folder}/run.json") + git(
        ws_path, "show", f"floom/runs:{folder}/logs.ndjson")
    events = await sse_until(client, f"/api/runs/{rid}/events", lambda d: d["type"] == "close")
    everything += json.dumps(events)
    everything += await (await client.get(f"/api/connections/{conn['id']}/activity")).text()
    everything += git(ws_path, "log", "--all", "-p")
    assert TOKEN not in everything and "<REDACTED:DOCS_TOKEN>" in everything


async def test_cancel_during_a_remote_call_ends_the_run_promptly_and_closes_the_session(
        client, admin, llm: FakeLLM, remote_server):  # noqa: F811
    conn = await connect(client, admin, remote_server.url)
    await configure(client.server.app, llm)
    await make_agent(client, "waiting", extra=USES_DOCS.format(tools="slow"))
    llm.script(call("docs__slow", {"seconds": 120}))
    rid = (await trigger(client, "waiting", {"topic": "t"}))["run_id"]
    parts = await sse_until(client, f"/api/runs/{rid}/stream",
                            lambda d: d["type"] == "tool-call" and d["name"] == "docs__slow")
    assert parts[-1]["connection_id"] == conn["id"]  # live, before the call's result
    assert len(held_sessions()) == 1
    began = asyncio.get_running_loop().time()
    resp = await client.post(f"/api/runs/{rid}/cancel")
    assert (await resp.json())["status"] == "cancel_requested"
    run = await wait_run(client, rid)
    assert (run["status"], run["error_code"]) == ("cancelled", "user_cancel"), run
    assert asyncio.get_running_loop().time() - began < 30  # not the tool's 120 s
    assert held_sessions() == []


async def test_cancel_while_a_connection_is_still_opening_ends_the_run_promptly(
        client, admin, llm: FakeLLM):
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # a server that takes the connection and never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        await connect(client, admin, f"http://127.0.0.1:{port}/mcp")
        await configure(client.server.app, llm)
        await make_agent(client, "hopeful", extra=USES_DOCS.format(tools="add"))
        rid = (await trigger(client, "hopeful", {"topic": "t"}))["run_id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not accepted:
            assert loop.time() < deadline, "the run never tried to connect"
            await asyncio.sleep(0.05)
        began = loop.time()
        await client.post(f"/api/runs/{rid}/cancel")
        run = await wait_run(client, rid)
        assert (run["status"], run["error_code"]) == ("cancelled", "user_cancel"), run
        assert loop.time() - began < 30  # not the 120 s connect timeout
        assert held_sessions() == [] and llm.requests == []
    finally:
        server.close()
        for writer in accepted:
            writer.close()


async def test_connection_tools_work_again_after_an_approval_across_a_restart(
        aiohttp_client, settings, llm: FakeLLM, remote_server):  # noqa: F811
    remote_server.tokens = {TOKEN}
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    admin = add_member(client.server.app, "default", "admin", "root")[1]
    conn = await connect(client, admin, remote_server.url, TOKEN)
    await configure(client.server.app, llm)
    await make_agent(client, "careful", extra=USES_DOCS.format(tools="add"))
    llm.script(call("docs__add", {"a": 1, "b": 2}),
               call("request_approval", {"label": "Add more", "preview": "1 + 2 = 3"}))
    rid = (await trigger(client, "careful", {"topic": "t"}))["run_id"]
    assert (await wait_run(client, rid))["status"] == "pending_approval"
    assert held_sessions() == []  # a parked run holds no session
    await client.close()  # the server stops while the run waits

    client = await aiohttp_client(create_app(settings), headers=AUTH)
    llm.script(call("docs__add", {"a": 3, "b": 4}), finish("7"))
    resp = await client.post(f"/api/runs/{rid}/approve")
    assert resp.status == 200, await resp.text()
    done = await wait_run(client, rid, until=("completed", "failed"))
    assert done["status"] == "completed", done
    assert [(c["name"], c["result"], c["connection_id"]) for c in done["tool_calls"]] == [
        ("docs__add", {"result": 3}, conn["id"]),
        ("request_approval", {"decision": "approved", "decided_by": "local-user"}, None),
        ("docs__add", {"result": 7}, conn["id"]), ("finish_with_outputs", "All outputs recorded; "
                                                   "the run is finished.", None)]
    assert tool_answers(llm, 3)[-1] == '{"result": 7}'
    assert held_sessions() == []


async def test_an_app_connection_of_the_catalog_gives_its_tools(client, settings, llm: FakeLLM,
                                                                remote_server):  # noqa: F811
    (settings.system_dir / "integrations.yml").write_text(json.dumps({"version": 1, "apps": [{
        "slug": "wiki", "name": "Wiki", "category": "knowledge", "description": "Our wiki.",
        "auth": "none", "mcp_url": remote_server.url,
        "tools": [{"name": "echo", "description": "Echo."}]}]}))
    resp = await client.post("/api/connections", json={"app": "wiki"})
    assert resp.status == 201, await resp.text()
    conn_id = (await resp.json())["connection_id"]
    await configure(client.server.app, llm)
    await make_agent(
        client, "reader", extra="connections:\n  - {app: wiki, allowed_tools: [echo]}\n"
    )
    llm.script(call("wiki__echo", {"text": "hello", "upper": True}), finish())
    run = await wait_run(client, (await trigger(client, "reader", {"topic": "t"}))["run_id"])
    assert run["status"] == "completed", run
    assert run["tool_calls"][0]["result"] == {"result": "HELLO"}
    assert run["tool_calls"][0]["connection_id"] == conn_id
    assert [n for n in offered(llm) if "__" in n] == ["wiki__echo"]

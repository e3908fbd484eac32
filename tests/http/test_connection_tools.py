"""A worker's connections as agent tools, against a real SDK-built MCP server: descriptors with
schemas filtered by allowed_tools, calls returning the remote result tagged with the connection,
errors and timeouts as tool failures, activity recorded; a missing connection makes the worker
`missing_connection` and fails opening its tools."""

from __future__ import annotations

import pytest

from floom_git.http.keys import CONNECTIONS, MANAGER
from floom_git.services.connection_tools import (
    ConnectionFailed,
    ConnectionToolset,
    MissingConnections,
    ToolCallFailed,
)
from tests.conftest import add_member
from tests.http.test_runs import RESULT_OK, make_worker
from tests.remote_mcp_server import remote_server  # noqa: F401  (fixture)

DECLARES = """connections:
  - mcp: {label: docs, allowed_tools: [add, fail, slow, echo]}
"""


@pytest.fixture
def settings(settings):
    return settings.replace(allow_private_mcp_urls=True)


@pytest.fixture
def admin(client) -> dict[str, str]:
    return add_member(client.server.app, "default", "admin", "root")[1]


async def connect(client, admin, url: str, **extra) -> dict:
    resp = await client.post("/api/connections/mcp", json={"label": "docs", "url": url, **extra},
                             headers=admin)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def toolset(client, worker_id: str, **kw) -> ConnectionToolset:
    app = client.server.app
    ws = app[MANAGER].get("default")
    manifest = ws.workers.get(worker_id).manifest
    return ConnectionToolset(app[CONNECTIONS], ws, manifest, **kw)


async def test_worker_connections_become_tools_that_call_the_server(client, admin, remote_server):  # noqa: F811
    conn = await connect(client, admin, remote_server.url, allowed_tools=["add", "fail", "slow"])
    await make_worker(client, "agentish", RESULT_OK, extra=DECLARES)
    async with toolset(client, "agentish", run_id="run_0123456789ab") as tools:
        by_name = {t.name: t for t in tools}
        # echo is allowed by the worker but not by the connection
        assert set(by_name) == {"docs__add", "docs__fail", "docs__slow"}
        add = by_name["docs__add"]
        assert add.connection_id == conn["id"] and add.remote_name == "add"
        assert add.description == "[docs] Add two integers."
        assert add.parameters["required"] == ["a", "b"]
        assert await add.fn({"a": 2, "b": 40}) == {"result": 42}
        with pytest.raises(ToolCallFailed, match="boom"):
            await by_name["docs__fail"].fn({"message": "boom"})
    activity = await (await client.get(f"/api/connections/{conn['id']}/activity")).json()
    assert activity["runs"] == [
        {
            "run_id": "run_0123456789ab",
            "worker_id": "agentish",
            "calls": 2,
            "errors": 1,
            "last_at": activity["runs"][0]["last_at"],
        }
    ]
    assert [(c["tool"], c["ok"]) for c in activity["calls"]] == [("fail", False), ("add", True)]
    assert "boom" in activity["calls"][0]["error"]
    latest = await (await client.get(f"/api/connections/{conn['id']}/activity?limit=1000")).json()
    assert latest == activity  # a larger limit is capped at 200, as every list's is


async def test_slow_remote_tool_times_out_as_a_tool_failure(client, admin, remote_server):  # noqa: F811
    await connect(client, admin, remote_server.url)
    await make_worker(client, "agentish", RESULT_OK, extra=DECLARES)
    async with toolset(client, "agentish", call_timeout=0.3) as tools:
        slow = next(t for t in tools if t.remote_name == "slow")
        with pytest.raises(ToolCallFailed, match="timed out"):
            await slow.fn({"seconds": 5})
        echo = next(t for t in tools if t.remote_name == "echo")
        assert await echo.fn({"text": "still", "upper": True}) == {"result": "STILL"}


async def test_missing_connection_status_detail_and_toolset(client, admin, remote_server):  # noqa: F811
    await make_worker(
        client,
        "agentish",
        RESULT_OK,
        extra=DECLARES + "  - github\n  - {app: linear, allowed_tools: [list_issues]}\n",
    )
    detail = await (await client.get("/api/workers/agentish")).json()
    assert detail["status"] == "missing_connection"
    assert detail["missing_connections"] == ["mcp:docs", "github", "linear"]
    listed = await (await client.get("/api/workers?status=missing_connection")).json()
    assert [w["id"] for w in listed] == ["agentish"]
    with pytest.raises(MissingConnections) as info:
        async with toolset(client, "agentish"):
            pass
    assert info.value.missing == ["mcp:docs", "github", "linear"]
    assert info.value.error_code == "missing_connection"

    await connect(client, admin, remote_server.url)
    detail = await (await client.get("/api/workers/agentish")).json()
    assert detail["missing_connections"] == ["github", "linear"]
    assert detail["status"] == "missing_connection"
    assert (await (await client.get("/api/workers/word-count")).json())["status"] == "ready"


async def test_declared_connection_that_cannot_open_fails_clearly(client, admin):
    resp = await client.post(
        "/api/connections/mcp",
        headers=admin,
        json={
            "label": "docs",
            "url": "http://127.0.0.1:9/mcp",
            "auth": {"type": "bearer", "secret": "NOPE"},
        },
    )
    assert resp.status == 201
    await make_worker(client, "agentish", RESULT_OK, extra=DECLARES)
    with pytest.raises(ConnectionFailed, match="workspace secret NOPE is not set") as info:
        async with toolset(client, "agentish"):
            pass
    assert info.value.error_code == "connection_failed"

"""The MCP tools registry: workers exposed as tools, kept in workspace-tools.yml on main, one
commit per change, with the same checks a push runs."""

from __future__ import annotations

import pytest

from tests.conftest import add_member, commit_count, git


async def add_tool(client, status: int = 201, **body) -> dict:
    resp = await client.post("/api/mcp-tools", json=body)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def test_create_tool_commits_workspace_tools_yml(client, ws_path):
    before = commit_count(ws_path)
    tool = await add_tool(client, name="count_words", worker_id="word-count",
                          description="Count the words of a text")
    assert tool["id"] == "count_words" and tool["worker_status"] == "ready"
    assert tool["input_schema"]["required"] == ["text"]
    assert commit_count(ws_path) == before + 1
    assert (
        git(ws_path, "log", "-1", "--format=%s").strip()
        == "mcp-tools: add count_words (word-count)"
    )
    assert git(ws_path, "show", "main:workspace-tools.yml") == (
        "version: 1\ntools:\n- id: count_words\n  name: count_words\n  worker_id: word-count\n"
        "  description: Count the words of a text\n")
    listed = await (await client.get("/api/mcp-tools")).json()
    assert [t["name"] for t in listed] == ["count_words"]


async def test_update_and_delete_tool_one_commit_each(client, ws_path):
    await add_tool(client, name="count_words", worker_id="word-count", id="wc")
    before = commit_count(ws_path)
    resp = await client.put("/api/mcp-tools/wc", json={"description": "Words, lines, longest"})
    assert resp.status == 200
    body = await resp.json()
    assert body["description"] == "Words, lines, longest" and body["name"] == "count_words"
    resp = await client.put("/api/mcp-tools/wc", json={"name": "words"})
    assert (await resp.json())["name"] == "words"
    assert commit_count(ws_path) == before + 2
    resp = await client.delete("/api/mcp-tools/wc")
    assert resp.status == 200 and (await resp.json())["deleted"] is True
    assert commit_count(ws_path) == before + 3
    assert "tools: []" in git(ws_path, "show", "main:workspace-tools.yml")
    assert (await client.delete("/api/mcp-tools/wc")).status == 404
    assert (await client.put("/api/mcp-tools/wc", json={"name": "x"})).status == 404


@pytest.mark.parametrize(
    "body, status, detail",
    [
        (
            {"name": "t1", "worker_id": "no-such-worker"},
            400,
            "workspace-tools.yml: tool 't1' names worker 'no-such-worker', which does not exist",
        ),
        (
            {"name": "run_worker", "worker_id": "word-count"},
            400,
            "workspace-tools.yml: 'run_worker' is the name of a built-in tool - at `$.tools[0]`",
        ),
        ({"name": "has space", "worker_id": "word-count"}, 400, "- at `$.name`"),
        (
            {"name": "t1", "worker_id": 7},
            400,
            "Expected 3 to 64 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit (e.g. `word-count`), got `int` - at "
            "`$.worker_id`",
        ),
    ],
)
async def test_create_tool_refused_without_commit(client, ws_path, body, status, detail):
    before = commit_count(ws_path)
    data = await add_tool(client, status=status, **body)
    assert detail in data["detail"]
    assert commit_count(ws_path) == before


async def test_create_and_update_tool_ignore_unknown_fields(client):
    tool = await add_tool(client, name="count_words", worker_id="word-count", extra=1)
    assert tool["name"] == "count_words"
    resp = await client.put("/api/mcp-tools/count_words", json={"description": "d", "later": True})
    assert resp.status == 200 and (await resp.json())["description"] == "d"
    resp = await client.put("/api/mcp-tools/count_words", json={"description": 3})
    assert resp.status == 400 and "at `$.description`" in (await resp.json())["detail"]


async def test_create_tool_duplicate_name_or_id_is_409(client):
    await add_tool(client, name="count_words", worker_id="word-count")
    dup = await add_tool(client, 409, name="count_words", worker_id="research-brief", id="other")
    assert dup["detail"] == "An MCP tool with the name count_words already exists"
    dup = await add_tool(client, 409, name="another", worker_id="research-brief", id="count_words")
    assert dup["detail"] == "An MCP tool with the id count_words already exists"
    await add_tool(client, name="brief", worker_id="research-brief")
    resp = await client.put("/api/mcp-tools/brief", json={"name": "count_words"})
    assert resp.status == 409


async def test_delete_worker_exposed_as_tool_is_refused(client, ws_path):
    await add_tool(client, name="count_words", worker_id="word-count")
    resp = await client.delete("/api/workers/word-count")
    assert resp.status == 409
    assert (await resp.json())["detail"] == (
        "Worker word-count is exposed as MCP tool count_words; "
        "remove the tool first (DELETE /mcp-tools/{id})"
    )
    assert (await client.delete("/api/mcp-tools/count_words")).status == 200
    assert (await client.delete("/api/workers/word-count")).status == 200


async def test_viewer_lists_but_cannot_change_tools(client):
    _, viewer = add_member(client.server.app, "default", "viewer", "vera")
    await add_tool(client, name="count_words", worker_id="word-count")
    resp = await client.get("/api/mcp-tools", headers=viewer)
    assert resp.status == 200 and len(await resp.json()) == 1
    for method, path, body in (("POST", "/api/mcp-tools", {"name": "x", "worker_id": "word-count"}),
                               ("PUT", "/api/mcp-tools/count_words", {"name": "y"}),
                               ("DELETE", "/api/mcp-tools/count_words", None)):
        resp = await client.request(method, path, json=body, headers=viewer)
        assert resp.status == 403, (method, path)

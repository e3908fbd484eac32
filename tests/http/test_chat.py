"""The workspace agent through the real API against the fake LLM server: POST /chat streams the
answer (deltas, tool calls, the final message), its tools act through the services with the
caller's permissions (a viewer reads, a member also runs workers and writes issues), and every
conversation is its owner's, stored on floom/conversations."""

from __future__ import annotations

import json
import subprocess

import pytest

from floom_git.http.app import create_app
from tests.conftest import AUTH, add_member, git
from tests.fakes.llm_server import KEY, FakeLLM, call, calls, error, text
from tests.http.agent_helpers import configure
from tests.http.test_runs import wait_for, wait_run


async def ask(client, message: str, conversation_id: str | None = None,
              headers: dict | None = None, status: int = 200) -> list[dict]:
    """POST /chat and read its SSE frames (their JSON data) to the end."""
    body = {"message": message}
    if conversation_id:
        body["conversation_id"] = conversation_id
    frames: list[dict] = []
    async with client.post("/api/chat", json=body, headers=headers or {}) as resp:
        if status != 200:
            assert resp.status == status, await resp.text()
            return [await resp.json()]
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/event-stream"
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                frames.append(json.loads(line[5:].strip()))
    return frames


def of(frames: list[dict], kind: str) -> list[dict]:
    return [f for f in frames if f["type"] == kind]


async def committed_conversation(ws_path, conversation_id: str, count: int) -> list[dict]:
    found: list[dict] = []

    async def check() -> bool:
        try:
            data = git(ws_path, "show", f"floom/conversations:conversations/{conversation_id}/"
                                        "messages.ndjson")
        except subprocess.CalledProcessError:
            return False
        found[:] = [json.loads(x) for x in data.splitlines()]
        return len(found) == count

    await wait_for(check, f"{conversation_id} committed with {count} messages")
    return found


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_chat_streams_answer_and_stores_conversation(client, ws_path, llm: FakeLLM,
                                                           protocol):
    await configure(client.server.app, llm, protocol)
    llm.script(
        call("list_workers", {}), text("There are two workers: research-brief and word-count.")
    )
    frames = await ask(client, "Which workers are there?")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "conversation" and kinds[-2:] == ["message", "done"]
    assert [f["name"] for f in of(frames, "tool_call_start")] == ["list_workers"]
    listed = of(frames, "tool_call")[0]["result"]["workers"]
    assert {w["id"]: w["status"] for w in listed} == {"research-brief": "ready",
                                                      "word-count": "ready"}
    streamed = "".join(f["text"] for f in of(frames, "text_delta"))
    message = of(frames, "message")[0]["message"]
    assert streamed == message["content"] == "There are two workers: research-brief and word-count."
    assert message["usage"]["input_tokens"] == 24 and message["usage"]["cost_usd"] > 0
    first = llm.requests[0].body
    system = first["messages"][0]["content"] if protocol == "openai" else first["system"]
    assert 'agent of the floom-git workspace "default"' in system
    assert (ws_path / "workspace.md").read_text().strip() in system

    cid = frames[0]["conversation_id"]
    listed = await (await client.get("/api/conversations")).json()
    assert [(c["id"], c["title"], c["message_count"]) for c in listed] == [
        (cid, "Which workers are there?", 2)]
    detail = await (await client.get(f"/api/conversations/{cid}")).json()
    assert [(m["role"], m["content"][:5]) for m in detail["messages"]] == [
        ("user", "Which"), ("assistant", "There")]
    assert [c["name"] for c in detail["messages"][1]["tool_calls"]] == ["list_workers"]
    stored = await committed_conversation(ws_path, cid, 2)
    assert stored == detail["messages"]
    meta = json.loads(git(ws_path, "show", f"floom/conversations:conversations/{cid}/"
                                           "conversation.json"))
    assert meta["created_by"] == "local-user" and meta["message_count"] == 2


async def test_chat_goes_on_in_the_same_conversation_after_a_restart(aiohttp_client, settings,
                                                                     llm: FakeLLM, ws_path):
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    await configure(client.server.app, llm, "anthropic")
    llm.script(text("Hello! How can I help?"))
    cid = (await ask(client, "Hi there"))[0]["conversation_id"]
    await client.close()
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    llm.script(text("You said hi."))
    frames = await ask(client, "What did I say?", cid)
    assert frames[0]["conversation_id"] == cid
    sent = json.dumps(llm.requests[-1].body["messages"])
    assert "Hi there" in sent and "How can I help?" in sent and "What did I say?" in sent
    assert len(await committed_conversation(ws_path, cid, 4)) == 4


async def test_chat_member_runs_a_worker_and_writes_issues(client, llm: FakeLLM):
    await configure(client.server.app, llm)
    llm.script(call("run_worker", {"worker_id": "word-count", "inputs": {"text": "one two three"}}),
               call("issues_create", {"title": "Counted the words", "labels": ["chat"]}),
               calls(("issues_comment", {"id": "ISSUE-0001", "body": "It was three."}),
                     ("issues_close", {"id": "ISSUE-0001"})),
               call("issues_list", {"status": "closed"}),
               text("Done: three words, issue closed."))
    frames = await ask(client, "Count the words of 'one two three' and note it in an issue")
    results = {f["name"]: f for f in of(frames, "tool_call")}
    ran = results["run_worker"]["result"]
    assert ran["status"] == "completed" and ran["outputs"]["words"] == 3, ran
    run = await wait_run(client, ran["run_id"])
    assert run["trigger_source"] == "workspace-agent" and run["created_by"] == "local-user"
    assert results["issues_close"]["result"]["issue"]["status"] == "closed"
    assert results["issues_list"]["result"]["count"] == 1
    issue = await (await client.get("/api/workspace/issues/ISSUE-0001")).json()
    assert issue["title"] == "Counted the words" and issue["status"] == "closed"
    assert [c["body"] for c in issue["comments"]] == ["It was three."]


async def test_chat_viewer_can_read_but_not_write(client, llm: FakeLLM):
    await configure(client.server.app, llm)
    _, viewer = add_member(client.server.app, "default", "viewer", "vera")
    llm.script(calls(("list_workers", {}), ("issues_create", {"title": "Sneaky"}),
                     ("run_worker", {"worker_id": "word-count", "inputs": {"text": "x"}})),
               text("I can only read here."))
    frames = await ask(client, "Open an issue and run word-count", headers=viewer)
    codes = {f["name"]: f["error_code"] for f in of(frames, "tool_call")}
    assert codes == {"list_workers": None, "issues_create": "unknown_tool",
                     "run_worker": "unknown_tool"}
    offered = {t["function"]["name"] for t in llm.requests[0].body["tools"]}
    assert offered == {"list_workers", "get_worker", "list_runs", "get_run", "get_run_logs",
                       "list_contexts", "read_context", "issues_list"}
    assert "can read but not change anything" in llm.requests[0].body["messages"][0]["content"]
    issues = await (await client.get("/api/workspace/issues")).json()
    assert issues["issues"] == [] and await (await client.get("/api/runs")).json() == []


async def test_chat_needs_setup_is_409_before_any_stream(client):
    (refused,) = await ask(client, "Hello?", status=409)
    assert refused["detail"].startswith("The workspace agent needs setup: no LLM provider")
    assert await (await client.get("/api/conversations")).json() == []


async def test_chat_provider_error_is_the_answer_and_is_stored(client, llm: FakeLLM):
    await configure(client.server.app, llm)
    llm.script(error(400))
    frames = await ask(client, "Hello?")
    message = of(frames, "message")[0]["message"]
    assert message["error_code"] == "provider_error" and "HTTP 400" in message["error"]
    cid = frames[0]["conversation_id"]
    detail = await (await client.get(f"/api/conversations/{cid}")).json()
    assert detail["messages"][1]["error_code"] == "provider_error"


async def test_conversations_are_their_owners_and_admins_see_all(client, llm: FakeLLM):
    await configure(client.server.app, llm)
    app = client.server.app
    _, ann = add_member(app, "default", "member", "ann")
    _, bob = add_member(app, "default", "member", "bob")
    _, boss = add_member(app, "default", "admin", "boss")
    llm.script(text("Hi Ann."))
    cid = (await ask(client, "I am Ann", headers=ann))[0]["conversation_id"]
    assert [
        c["id"] for c in await (await client.get("/api/conversations", headers=ann)).json()
    ] == [cid]
    assert await (await client.get("/api/conversations", headers=bob)).json() == []
    resp = await client.get(f"/api/conversations/{cid}", headers=bob)
    assert resp.status == 404 and (await resp.json())["detail"] == "Conversation not found"
    (refused,) = await ask(client, "Let me in", cid, headers=bob, status=404)
    assert refused["detail"] == "Conversation not found"
    assert await (await client.get("/api/conversations?all=1", headers=bob)).json() == []
    assert await (await client.get("/api/conversations", headers=boss)).json() == []
    everyone = await (await client.get("/api/conversations?all=1", headers=boss)).json()
    assert [c["id"] for c in everyone] == [cid]
    assert (await client.get(f"/api/conversations/{cid}", headers=boss)).status == 200
    unknown = await client.get("/api/conversations/conv_000000000000", headers=ann)
    assert unknown.status == 404


async def test_chat_keeps_the_provider_key_out_of_what_it_stores_and_streams(client, ws_path,
                                                                             llm: FakeLLM):
    await configure(client.server.app, llm)
    llm.script(text(f"Your key is {KEY}."))
    frames = await ask(client, f"Is {KEY} my key?")
    assert KEY not in json.dumps(of(frames, "message"))
    cid = frames[0]["conversation_id"]
    stored = await committed_conversation(ws_path, cid, 2)
    assert [m["content"] for m in stored] == ["Is <REDACTED:LLM_KEY> my key?",
                                              "Your key is <REDACTED:LLM_KEY>."]

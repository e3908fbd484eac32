"""Agent workers that cannot run are refused early (status needs_setup with the reason, a trigger
409) and a bad `agent:` block never reaches main (push, API); an agent's request_approval parks
its run, and approving or rejecting resumes the same run's loop, also across a restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from floom_git.http.app import create_app
from tests.conftest import AUTH, SECRET, add_member, git
from tests.fakes.llm_server import FakeLLM, call, text
from tests.http.agent_helpers import configure, make_agent, set_key, write_workspace_yml
from tests.http.test_runs import _sse, committed, trigger, wait_run

REASON_NO_PROVIDER = "no LLM provider is configured"


async def worker(client, wid: str) -> dict:
    resp = await client.get(f"/api/workers/{wid}")
    assert resp.status == 200
    return await resp.json()


async def test_agent_worker_needs_setup_until_provider_and_key_exist(client, llm: FakeLLM,
                                                                     ws_path: Path):
    # A new workspace keeps the template's commented examples of an agent: block.
    assert "# agent: {provider: anthropic, model: claude-sonnet-4-5" in (
        ws_path / "workspace.yml").read_text()
    brief = await worker(client, "research-brief")
    assert brief["status"] == "needs_setup" and REASON_NO_PROVIDER in brief["error"]
    assert brief["enabled"] is False
    assert (await worker(client, "word-count"))["status"] == "ready"
    listed = await (await client.get("/api/workers?status=needs_setup")).json()
    assert [w["id"] for w in listed] == ["research-brief"]
    resp = await client.post("/api/workers/research-brief/runs", json={"inputs": {"topic": "t"}})
    assert resp.status == 409
    detail = (await resp.json())["detail"]
    assert detail.startswith("Worker research-brief needs setup: ") and REASON_NO_PROVIDER in detail
    assert (await (await client.get("/api/runs")).json()) == []  # nothing was queued

    await configure(client.server.app, llm, key=None)
    missing = await worker(client, "research-brief")
    assert missing["status"] == "needs_setup"
    assert "the secret LLM_KEY named by agent.api_key_secret" in missing["error"]
    resp = await client.post("/api/workers/research-brief/runs", json={"inputs": {"topic": "t"}})
    assert resp.status == 409 and "LLM_KEY" in (await resp.json())["detail"]

    set_key(client.server.app, "some-key")
    ready = await worker(client, "research-brief")
    assert (ready["status"], ready["error"], ready["enabled"]) == ("ready", None, True)


async def test_agent_worker_with_invalid_agent_block_shows_the_problem(client):
    await write_workspace_yml(
        client.server.app, "name: default\nagent: {provider: gemini, model: x}\n"
    )
    brief = await worker(client, "research-brief")
    assert brief["status"] == "needs_setup"
    assert brief["error"] == ("workspace.yml: Invalid enum value 'gemini' (allowed: anthropic, "
                              "openai) - at `$.agent.provider`")
    _, admin = add_member(client.server.app, "default", "admin", "ada")
    resp = await client.patch("/api/workspaces/default", json={"description": "renamed"},
                              headers=admin)
    assert resp.status == 400  # an API write never commits the bad block anew
    assert (await resp.json())["detail"] == brief["error"]


def _push(tmp_path: Path, base: str, workspace_yml: str) -> subprocess.CompletedProcess[str]:
    clone = tmp_path / "clone"
    url = base.replace("http://", f"http://x:{SECRET}@") + "/git/default.git"
    subprocess.run(["git", "clone", "-q", url, str(clone)], check=True, capture_output=True)
    (clone / "workspace.yml").write_text(workspace_yml)
    git(clone, "commit", "-qam", "agent settings")
    return subprocess.run(["git", "-C", str(clone), "push", "origin", "HEAD:main"],
                          capture_output=True, text=True, check=False)


async def test_push_bad_agent_block_is_refused_and_good_one_accepted(client, tmp_path: Path):
    base = str(client.make_url("")).rstrip("/")
    bad = "name: default\nagent: {provider: openai, model: gpt-4o, api_key_secret: lower-case}\n"
    pushed = await asyncio.to_thread(_push, tmp_path, base, bad)
    assert pushed.returncode != 0
    assert (
        "remote:   - workspace.yml: Expected a name of 1 to 64 uppercase letters" in pushed.stderr
    )
    assert "at `$.agent.api_key_secret`" in pushed.stderr
    good = (
        "name: default\nagent: {provider: anthropic, model: claude-sonnet-4-5, api_key_secret: K}\n"
    )
    (tmp_path / "clone" / "workspace.yml").write_text(good)
    git(tmp_path / "clone", "commit", "-qam", "good settings")
    again = await asyncio.to_thread(subprocess.run, ["git", "-C", str(tmp_path / "clone"), "push",
                                                     "origin", "HEAD:main"], capture_output=True,
                                    text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "the secret K named by" in (await worker(client, "research-brief"))["error"]


async def test_push_to_conversations_branch_is_refused(client, tmp_path: Path):
    base = str(client.make_url("")).rstrip("/")
    pushed = await asyncio.to_thread(_push, tmp_path, base, "name: default\n")
    assert pushed.returncode == 0, pushed.stderr
    refused = await asyncio.to_thread(
        subprocess.run,
        ["git", "-C", str(tmp_path / "clone"), "push", "origin", "HEAD:floom/conversations"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "refs/heads/floom/conversations: branch is owned by the server" in refused.stderr


# -- request_approval -----------------------------------------------------------------------------
ASK = call("request_approval", {"label": "Publish the summary", "preview": "Widgets are great."})


async def parked_run(client, llm: FakeLLM, protocol: str = "openai") -> dict:
    await configure(client.server.app, llm, protocol)
    await make_agent(client, "careful")
    llm.script(ASK)
    rid = (await trigger(client, "careful", {"topic": "widgets"}))["run_id"]
    run = await wait_run(client, rid)
    assert run["status"] == "pending_approval", run
    assert run["approval"]["label"] == "Publish the summary"
    assert run["approval"]["preview"] == "Widgets are great."
    assert run["approval"]["tool_call_id"] == run["tool_calls"][0]["id"]
    assert run["tool_calls"][0]["result"] == {"status": "pending_approval"}
    return run


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_agent_approval_resumes_the_same_run_across_a_restart(
    aiohttp_client, settings, llm: FakeLLM, ws_path, protocol
):
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    run = await parked_run(client, llm, protocol)
    rid = run["id"]
    await committed(ws_path, rid, "pending_approval")
    await client.close()  # the server stops while the run waits

    client = await aiohttp_client(create_app(settings), headers=AUTH)
    again = await (await client.get(f"/api/runs/{rid}")).json()
    assert again["status"] == "pending_approval"
    llm.script(call("finish_with_outputs", {"outputs": {"summary": "Published."}}))
    resp = await client.post(f"/api/runs/{rid}/approve", json={"reason": "Looks right"})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"status": "approved", "run_id": rid,
                                 "approval_id": run["approval"]["id"], "follow_up_run_id": None}
    done = await wait_run(client, rid, until=("completed", "failed"))
    assert done["status"] == "completed", done
    assert done["outputs"] == {"summary": "Published."}
    assert done["tool_calls"][0]["result"] == {"decision": "approved", "reason": "Looks right",
                                               "decided_by": "local-user"}
    assert done["agent"]["turns"] == 2
    messages = json.dumps(llm.requests[-1].body)
    assert "Looks right" in messages and "approved" in messages
    statuses = [
        e["status"]
        for e in (f["data"] for f in await _sse(client, f"/api/runs/{rid}/events"))
        if e["type"] == "status"
    ]
    assert statuses == ["queued", "running", "pending_approval", "queued", "running", "completed"]
    # The log holds the steps before and after the approval; the record lands on floom/runs.
    steps = [x["event"]["type"] for x in done["logs"] if x["event"]]
    assert steps == ["model_turn", "tool_call", "agent_end", "model_turn", "tool_call", "agent_end"]
    record = await committed(ws_path, rid, "completed")
    assert record["approval"]["status"] == "approved"
    spool = settings.spool_dir
    assert not list(spool.glob("*/agents/*"))  # its saved state is gone with the run


async def test_agent_approval_rejected_goes_on_with_the_rejection(client, llm: FakeLLM):
    run = await parked_run(client, llm)
    llm.script(text("Understood, I will not publish."))
    llm.script(call("finish_with_outputs", {"outputs": {"summary": "Not published."}}))
    resp = await client.post(f"/api/approvals/{run['approval']['id']}/reject",
                             json={"reason": "Too vague"})
    assert (await resp.json())["status"] == "rejected"
    done = await wait_run(client, run["id"], until=("completed", "failed"))
    assert done["status"] == "completed" and done["outputs"] == {"summary": "Not published."}
    assert done["approval"]["status"] == "rejected"
    assert done["tool_calls"][0]["result"]["decision"] == "rejected"
    assert "Too vague" in json.dumps(llm.requests[1].body)


async def test_agent_approval_takes_no_edited_output_and_cancel_drops_its_state(client, llm,
                                                                                 settings):
    run = await parked_run(client, llm)
    resp = await client.post(f"/api/runs/{run['id']}/approve",
                             json={"edited_output": {"summary": "mine"}})
    assert resp.status == 400 and "edited_output" in (await resp.json())["detail"]
    assert list(settings.spool_dir.glob("*/agents/*"))
    resp = await client.post(f"/api/runs/{run['id']}/cancel")
    assert (await resp.json())["status"] == "cancelled"
    assert not list(settings.spool_dir.glob("*/agents/*"))

"""Approvals: a worker with approvals.required stops in pending_approval; approve starts the
follow-up run, reject fails the run, deciding twice is 409, approvals expire and survive
restarts."""

from __future__ import annotations

import asyncio

import pytest

from floom_git.http.app import create_app
from tests.conftest import AUTH
from tests.http.test_runs import _sse, committed, make_worker, trigger, wait_run

PROPOSER = """import json
inputs = json.load(open("inputs.json"))
if inputs["decision"] == "approved":
    out = {"sent": inputs["approved_output"]}
    json.dump({"status": "success", "outputs": out}, open("result.json", "w"))
else:
    json.dump({"status": "success", "outputs": {"draft": "Hello " + inputs["to"]},
               "decision_required": {"label": "Send the email?",
                                     "preview": "Hello " + inputs["to"]}},
              open("result.json", "w"))
"""
INPUTS = "    - {name: to, type: string, required: true}\n"


def approvals(hours: float | None = None) -> str:
    extra = f"  expires_hours: {hours}\n" if hours else ""
    return "approvals:\n  required: true\n  label: Approve action\n" + extra


@pytest.fixture
def settings(settings):
    return settings.replace(approval_sweep_seconds=0.1, sse_keepalive_seconds=0.2)


async def pending_run(client, name: str = "mailer", hours: float | None = None) -> dict:
    await make_worker(client, name, PROPOSER, inputs=INPUTS, extra=approvals(hours))
    body = await trigger(client, name, {"to": "Ada", "decision": "approved"})  # caller can't skip
    run = await wait_run(client, body["run_id"])
    assert run["status"] == "pending_approval", run
    return run


async def test_approve_run_starts_follow_up_with_edited_output(client, ws_path):
    run = await pending_run(client)
    approval = run["approval"]
    assert approval["id"].startswith("apr_") and approval["status"] == "pending"
    assert approval["label"] == "Send the email?" and approval["preview"] == "Hello Ada"
    assert run["inputs"]["decision"] == "proposed"
    assert (await (await client.get("/api/approvals/count")).json()) == {"pending": 1}

    resp = await client.post(
        f"/api/runs/{run['id']}/approve",
        json={"edited_output": {"draft": "Hi Ada"}, "annotation": "friendlier"},
    )
    assert resp.status == 200, await resp.text()
    decision = await resp.json()
    assert decision["status"] == "approved" and decision["approval_id"] == approval["id"]
    follow = await wait_run(client, decision["run_id"])
    assert follow["status"] == "completed", follow
    assert follow["trigger_source"] == "approval" and follow["approval_of"] == run["id"]
    assert follow["inputs"]["decision"] == "approved"
    assert follow["outputs"] == {"sent": {"draft": "Hi Ada"}}

    original = await (await client.get(f"/api/runs/{run['id']}")).json()
    assert original["status"] == "completed"
    assert original["approval"]["status"] == "approved"
    assert original["approval"]["follow_up_run_id"] == follow["id"]
    assert original["approval"]["annotation"] == "friendlier"
    assert (await (await client.get("/api/approvals/count")).json()) == {"pending": 0}
    resp = await client.post(f"/api/runs/{run['id']}/approve", json={})
    assert resp.status == 409
    assert (await resp.json())["detail"] == f"Approval {approval['id']} already decided (approved)"
    record = await committed(ws_path, run["id"], "completed")
    assert record["approval"]["status"] == "approved"


async def test_reject_run_by_approval_id_fails_it_with_reason(client):
    run = await pending_run(client)
    apr = run["approval"]["id"]
    resp = await client.post(f"/api/approvals/{apr}/reject", json={"reason": "wrong person"})
    assert (await resp.json()) == {"status": "rejected", "run_id": run["id"], "approval_id": apr,
                                   "follow_up_run_id": None}
    done = await (await client.get(f"/api/runs/{run['id']}")).json()
    assert done["status"] == "failed" and done["error_code"] == "approval_rejected"
    assert done["error"] == "Rejected: wrong person"
    assert done["approval"]["reason"] == "wrong person"
    resp = await client.post(f"/api/approvals/{apr}/approve")
    assert resp.status == 409
    listed = await (await client.get("/api/approvals?status=rejected")).json()
    assert [(a["id"], a["run_id"], a["worker_id"]) for a in listed] == [(apr, run["id"], "mailer")]
    assert await (await client.get("/api/approvals")).json() == []


async def test_approve_unknown_approval_is_404_and_plain_run_is_409(client):
    resp = await client.post("/api/approvals/apr_000000000000/approve")
    assert resp.status == 404
    rid = (await trigger(client, "word-count", {"text": "x"}))["run_id"]
    await wait_run(client, rid)
    resp = await client.post(f"/api/runs/{rid}/reject")
    assert resp.status == 409
    assert (await resp.json())["detail"] == f"Run {rid} is not awaiting approval"


async def test_pending_approval_expires_and_run_fails(client):
    run = await pending_run(client, "expiring", hours=0.0002)  # under a second
    rid = run["id"]
    done = await wait_run(client, rid, until=("failed",))
    assert done["error_code"] == "approval_expired"
    assert done["approval"]["status"] == "expired"
    events = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/events")]
    decided = [e for e in events if e["type"] == "approval_decided"]
    assert decided == [{"type": "approval_decided", "run_id": rid, "decision": "expired",
                        "approval_id": run["approval"]["id"]}]
    assert events[-1]["type"] == "close"


async def test_events_stream_of_pending_run_ends_after_decision(client):
    run = await pending_run(client)
    rid = run["id"]

    async def approve_soon() -> None:
        await asyncio.sleep(0.2)
        await client.post(f"/api/runs/{rid}/approve")

    task = asyncio.ensure_future(approve_soon())
    events = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/events")]
    await task
    types = [e["type"] for e in events]
    assert "approval_decided" in types
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "pending_approval", "completed"]
    assert types[-1] == "close"


async def test_pending_approval_survives_restart(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    run = await pending_run(client)
    await client.close()
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    again = await (await client.get(f"/api/runs/{run['id']}")).json()
    assert again["status"] == "pending_approval"
    assert again["approval"]["status"] == "pending"
    resp = await client.post(f"/api/runs/{run['id']}/approve")
    assert resp.status == 200
    follow = await wait_run(client, (await resp.json())["run_id"])
    assert follow["outputs"] == {"sent": {"draft": "Hello Ada"}}


async def test_cancel_pending_run_cancels_its_approval(client):
    run = await pending_run(client)
    resp = await client.post(f"/api/runs/{run['id']}/cancel")
    assert await resp.json() == {"status": "cancelled", "run_id": run["id"]}
    done = await (await client.get(f"/api/runs/{run['id']}")).json()
    assert done["status"] == "cancelled" and done["approval"]["status"] == "cancelled"
    assert (await client.post(f"/api/runs/{run['id']}/approve")).status == 409


async def test_events_stream_sends_keepalives_while_pending(client):
    run = await pending_run(client)

    async def first_ping() -> bytes:
        async with client.get(f"/api/runs/{run['id']}/events") as resp:
            async for raw in resp.content:
                if raw.startswith(b":"):
                    return raw
        return b""

    assert (await asyncio.wait_for(first_ping(), 20)).startswith(b": ping")

"""POST /composio-events: Standard Webhooks signatures with COMPOSIO_WEBHOOK_SIGNING_KEY (503
without it, 401 on a bad or stale signature), workers whose composio trigger matches start a run
with the event as input, and a delivery id seen before starts nothing new."""

from __future__ import annotations

import base64
import json
import time

import pytest

from floom_git.http.app import create_app
from floom_git.services import composio
from tests.http.test_runs import RESULT_OK, make_worker, wait_run

KEY = "whsec_" + base64.b64encode(b"composio-test-key-0123456789").decode()
TRIGGER = """triggers:
  - type: composio
    composio:
      event: GITHUB_STAR_ADDED_EVENT
      connection_id: ca_1
      filters: {repository.name: floom}
"""
EVENT = {"type": "composio.trigger.message", "id": "msg_1",
         "metadata": {"trigger_slug": "github_star_added_event", "trigger_id": "ti_9",
                      "connected_account_id": "ca_1"},
         "data": {"repository": {"name": "floom"}, "starred_by": "ada"}}


@pytest.fixture
def settings(settings):
    return settings.replace(composio_webhook_signing_key=KEY)


def signed(body: bytes, delivery: str = "wh_1", when: int | None = None, key: str = KEY) -> dict:
    stamp = str(int(time.time()) if when is None else when)
    return {"webhook-id": delivery, "webhook-timestamp": stamp,
            "webhook-signature": composio.sign(key, delivery, stamp, body),
            "Content-Type": "application/json"}


async def post(client, event: dict, status: int = 200, **kw) -> dict:
    body = json.dumps(event).encode()
    resp = await client.post("/composio-events", data=body, headers=signed(body, **kw))
    data = await resp.json()
    assert resp.status == status, data
    return data


async def test_matching_worker_runs_once_per_delivery(client):
    await make_worker(client, "on-star", RESULT_OK, extra=TRIGGER)
    await make_worker(client, "on-other", RESULT_OK, extra=TRIGGER.replace("STAR_ADDED", "PUSH"))
    first = await post(client, EVENT)
    assert first["event"] == "github_star_added_event" and first["deduped"] is False
    assert [r["worker_id"] for r in first["runs"]] == ["on-star"]
    run = await wait_run(client, first["runs"][0]["run_id"])
    assert run["trigger_source"] == "composio" and run["trigger_ref"] == "wh_1"
    assert run["outputs"]["echo"]["event"] == EVENT
    again = await post(client, EVENT)
    assert again["deduped"] is True and again["runs"][0]["run_id"] == first["runs"][0]["run_id"]
    assert len(await (await client.get("/api/runs")).json()) == 1
    other = await post(client, EVENT, delivery="wh_2")
    assert other["runs"][0]["run_id"] != first["runs"][0]["run_id"]


@pytest.mark.parametrize("change", [
    {"metadata": {**EVENT["metadata"], "connected_account_id": "ca_2"}},
    {"data": {"repository": {"name": "other"}}},
    {"metadata": {**EVENT["metadata"], "trigger_slug": "SLACK_MESSAGE"}},
])
async def test_non_matching_event_starts_nothing(client, change):
    await make_worker(client, "on-star", RESULT_OK, extra=TRIGGER)
    result = await post(client, {**EVENT, **change})
    assert result["runs"] == [] and result["deduped"] is False


async def test_older_flat_event_shape_matches_too(client):
    await make_worker(client, "on-star", RESULT_OK, extra=TRIGGER)
    flat = {"trigger_name": "GITHUB_STAR_ADDED_EVENT", "connection_id": "ca_1",
            "payload": {"repository": {"name": "floom"}}}
    assert [r["worker_id"] for r in (await post(client, flat))["runs"]] == ["on-star"]


async def test_bad_signatures_are_401(client):
    await make_worker(client, "on-star", RESULT_OK, extra=TRIGGER)
    body = json.dumps(EVENT).encode()
    cases = [
        {},
        {**signed(body), "webhook-signature": "v1,AAAA"},
        signed(body, key="whsec_" + base64.b64encode(b"another-key").decode()),
        signed(body, when=int(time.time()) - 3600),
        signed(b"{}"),  # signed another body
    ]
    for headers in cases:
        resp = await client.post("/composio-events", data=body, headers=headers)
        assert resp.status == 401, headers
        assert (await resp.json())["detail"].startswith("Invalid Composio webhook signature")
    assert await (await client.get("/api/runs")).json() == []


async def test_without_signing_key_is_503(aiohttp_client, settings):
    anon = await aiohttp_client(create_app(settings.replace(composio_webhook_signing_key=None)))
    body = json.dumps(EVENT).encode()
    resp = await anon.post("/composio-events", data=body, headers=signed(body))
    assert resp.status == 503
    assert (await resp.json())["detail"] == ("Composio events are not configured: set "
                                             "COMPOSIO_WEBHOOK_SIGNING_KEY")


async def test_worker_missing_required_input_is_reported_not_run(client):
    await make_worker(client, "needs-input", RESULT_OK, extra=TRIGGER,
                      inputs="    - {name: city, type: string, required: true}\n")
    result = await post(client, EVENT)
    assert result["runs"] == [{"worker_id": "needs-input", "run_id": None, "deduped": False,
                               "skipped": "Missing required inputs: city"}]

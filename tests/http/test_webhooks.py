"""Webhook triggers: the secret is shown once and rotated, the URL token or a body signature
authenticates, a repeated delivery id starts no second run, and rates are limited."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import pytest

from tests.http.test_runs import RESULT_OK, make_worker, wait_run

HOOKED = "triggers:\n  - type: webhook\n"


@pytest.fixture
def settings(settings):
    return settings.replace(webhook_rate_limit=5)


class Anonymous:
    """Requests to the same server without any credential."""

    def __init__(self, client, session: aiohttp.ClientSession) -> None:
        self.client, self.session = client, session

    async def post(self, path: str, **kw) -> aiohttp.ClientResponse:
        return await self.session.post(self.client.make_url(path), **kw)


@pytest.fixture
async def anon(client):
    async with aiohttp.ClientSession() as session:
        yield Anonymous(client, session)


async def hooked(client, name: str = "hooked") -> dict:
    await make_worker(client, name, RESULT_OK, extra=HOOKED)
    resp = await client.post(f"/api/workers/{name}/webhook-secret/rotate")
    assert resp.status == 200
    return await resp.json()


async def test_webhook_with_url_token_starts_run_with_body_as_inputs(client, anon):
    secret = await hooked(client)
    assert len(secret["webhook_secret"]) == 64
    assert secret["webhook_url"].endswith(f"/api/webhooks/hooked?token={secret['webhook_token']}")
    resp = await anon.post(f"/api/webhooks/hooked?token={secret['webhook_token']}",
                           json={"email": "lead@acme.com"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "queued"
    run = await wait_run(client, body["run_id"])
    assert run["trigger_source"] == "webhook"
    assert run["outputs"]["echo"] == {"email": "lead@acme.com"}


async def test_webhook_signature_header_authenticates_raw_body(client, anon):
    secret = await hooked(client)
    digest = hashlib.sha256(secret["webhook_secret"].encode()).hexdigest()
    raw = b"plain text payload"
    sig = "sha256=" + hmac.new(digest.encode(), raw, hashlib.sha256).hexdigest()
    resp = await anon.post("/api/webhooks/hooked", data=raw, headers={"X-Floom-Signature": sig})
    assert resp.status == 200, await resp.text()
    run = await wait_run(client, (await resp.json())["run_id"])
    assert run["outputs"]["echo"] == {"raw": "plain text payload"}


@pytest.mark.parametrize("how", ["token", "signature", "nothing"])
async def test_webhook_bad_credential_is_401(client, anon, how):
    await hooked(client)
    kwargs: dict = {"json": {"a": 1}}
    url = "/api/webhooks/hooked"
    if how == "token":
        url += "?token=" + "0" * 32
    elif how == "signature":
        kwargs["headers"] = {"X-Floom-Signature": "sha256=" + "0" * 64}
    resp = await anon.post(url, **kwargs)
    assert resp.status == 401
    assert (await resp.json())["detail"] == "Invalid webhook token or signature"
    assert (await client.get("/api/runs")).headers["X-Total-Count"] == "0"


async def test_webhook_rotate_invalidates_old_token(client, anon):
    old = await hooked(client)
    resp = await client.patch("/api/workers/hooked", json={"webhook_secret_rotate": True})
    assert resp.status == 200
    detail = await resp.json()
    assert detail["id"] == "hooked" and len(detail["new_webhook_secret"]) == 64
    new_token = detail["webhook_url"].rsplit("token=", 1)[1]
    assert (
        await anon.post(f"/api/webhooks/hooked?token={old['webhook_token']}", json={})
    ).status == 401
    assert (await anon.post(f"/api/webhooks/hooked?token={new_token}", json={})).status == 200


async def test_webhook_repeated_delivery_id_is_deduplicated(client, anon):
    secret = await hooked(client)
    url = f"/api/webhooks/hooked?token={secret['webhook_token']}"
    headers = {"X-Request-ID": "delivery-42"}
    first = await (await anon.post(url, json={"n": 1}, headers=headers)).json()
    again = await anon.post(url, json={"n": 1}, headers=headers)
    assert again.status == 200
    assert await again.json() == {"status": "queued", "run_id": first["run_id"], "deduped": True}
    other = await (
        await anon.post(url, json={"n": 2}, headers={"X-Request-ID": "delivery-43"})
    ).json()
    assert other["run_id"] != first["run_id"]
    assert (await client.get("/api/runs")).headers["X-Total-Count"] == "2"


async def test_webhook_probing_without_the_secret_is_one_uniform_401(client, anon):
    """Without the secret nobody learns which workspaces exist or which workers take webhooks."""
    await make_worker(client, "manual-only", RESULT_OK)
    await make_worker(client, "fresh-hook", RESULT_OK, extra=HOOKED)
    await hooked(client)
    probes = ["/api/webhooks/manual-only?token=x", "/api/webhooks/nobody-here?token=x",
              "/api/webhooks/fresh-hook?token=x", "/api/webhooks/hooked?token=x",
              "/api/webhooks/hooked?token=x&workspace=no-such-workspace",
              "/api/webhooks/hooked?token=x&workspace=Bad..Name"]
    answers = set()
    for url in probes:
        resp = await anon.post(url, json={})
        answers.add((resp.status, await resp.text()))
    assert answers == {(401, '{"detail":"Invalid webhook token or signature",'
                             '"code":"unauthenticated"}')}


async def test_webhook_worker_without_trigger_is_404_once_the_secret_checks_out(client, anon):
    await make_worker(client, "manual-only", RESULT_OK)
    token = (await (await client.post("/api/workers/manual-only/webhook-secret/rotate")).json())[
        "webhook_token"
    ]
    resp = await anon.post(f"/api/webhooks/manual-only?token={token}", json={})
    assert resp.status == 404
    assert (await resp.json())["detail"] == "Worker manual-only has no webhook trigger"


async def test_webhook_without_secret_yet_is_401(client, anon):
    await make_worker(client, "fresh-hook", RESULT_OK, extra=HOOKED)
    resp = await anon.post("/api/webhooks/fresh-hook?token=abc", json={})
    assert resp.status == 401
    assert (await resp.json())["detail"] == "Invalid webhook token or signature"


async def test_webhook_rate_limit_is_429_with_retry_after(client, anon):
    secret = await hooked(client)
    url = f"/api/webhooks/hooked?token={secret['webhook_token']}"
    statuses = [(await anon.post(url, data=json.dumps({"i": i}))).status for i in range(5)]
    assert statuses == [200] * 5
    resp = await anon.post(url, json={})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_webhook_missing_required_input_is_400(client, anon):
    inputs = "    - {name: email, type: string, required: true}\n"
    await make_worker(client, "strict-hook", RESULT_OK, inputs=inputs, extra=HOOKED)
    token = (await (await client.post("/api/workers/strict-hook/webhook-secret/rotate")).json())[
        "webhook_token"
    ]
    resp = await anon.post(f"/api/webhooks/strict-hook?token={token}", json={"other": 1})
    assert resp.status == 400
    assert (await resp.json())["detail"] == "Missing required inputs: email"

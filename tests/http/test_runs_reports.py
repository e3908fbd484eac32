"""Around runs: alerts delivered (signed, retried, recorded), worker stats, timeseries and logs,
the system overview, and the CSV export."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io

import pytest
from aiohttp import web

from floom_git.errors import InvalidInput
from floom_git.services.alerts import check_url
from tests.http.test_runs import RESULT_OK, make_worker, trigger, wait_for, wait_run

FAILING = "import sys\nprint('bad', file=sys.stderr)\nsys.exit(1)\n"


@pytest.fixture
def settings(settings):
    return settings.replace(alert_allow_private_urls=True, alert_retry_delays=(0.05, 0.05))


@pytest.fixture
async def receiver(aiohttp_server):
    """A real HTTP endpoint that records deliveries; /fail always answers 500."""
    received: list[tuple[str, bytes, dict]] = []

    async def ok(request: web.Request) -> web.Response:
        received.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async def fail(request: web.Request) -> web.Response:
        received.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/fail", fail)
    server = await aiohttp_server(app)
    server.received = received  # type: ignore[attr-defined]
    return server


async def test_alert_on_failure_posts_signed_json_and_records_delivery(client, receiver):
    await make_worker(client, "flaky", FAILING)
    resp = await client.post("/api/workers/flaky/alerts",
                             json={"url": str(receiver.make_url("/ok")), "on": ["failed"]})
    assert resp.status == 201, await resp.text()
    alert = await resp.json()
    assert alert["id"].startswith("alrt_") and len(alert["secret"]) == 64
    rid = (await trigger(client, "flaky"))["run_id"]
    assert (await wait_run(client, rid))["status"] == "failed"

    async def delivered() -> bool:
        listed = await (await client.get("/api/workers/flaky/alerts")).json()
        return bool(listed[0]["deliveries"])

    await wait_for(delivered, "alert delivery recorded")
    path, body, headers = receiver.received[0]
    assert path == "/ok"
    expected = "sha256=" + hmac.new(alert["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Floom-Signature"] == expected
    listed = await (await client.get("/api/workers/flaky/alerts")).json()
    assert listed[0]["secret"] is None  # shown once
    assert listed[0]["deliveries"][0]["ok"] is True
    assert listed[0]["deliveries"][0]["run_id"] == rid


async def test_create_email_alert_without_smtp_is_400(client):
    resp = await client.post(
        "/api/workers/word-count/alerts", json={"email_to": ["ops@example.com"]}
    )
    assert resp.status == 400
    assert (await resp.json())[
        "detail"
    ] == "email_to: this server sends no email (set FLOOM_SMTP_URL)"


async def test_alert_delivery_failure_is_retried_and_visible(client, receiver):
    await make_worker(client, "flaky", FAILING)
    await client.post("/api/workers/flaky/alerts", json={"url": str(receiver.make_url("/fail"))})
    await client.post("/api/workers/flaky/alerts",
                      json={"url": str(receiver.make_url("/ok")), "on": ["completed"]})
    rid = (await trigger(client, "flaky"))["run_id"]
    await wait_run(client, rid)

    async def recorded() -> bool:
        listed = await (await client.get("/api/workers/flaky/alerts")).json()
        return any(a["deliveries"] for a in listed)

    await wait_for(recorded, "failed delivery recorded")
    listed = await (await client.get("/api/workers/flaky/alerts")).json()
    failed = next(a for a in listed if a["deliveries"])
    assert failed["deliveries"][0] | {"at": None} == {
        "run_id": rid, "event": "run.failed", "at": None, "ok": False, "attempts": 3,
        "channel": "webhook", "target": failed["url"], "status": 500, "error": "HTTP 500"}
    assert [p for p, _, _ in receiver.received] == ["/fail"] * 3  # "completed" alert not called


async def test_create_alert_bad_url_or_event_is_400(client):
    await make_worker(client, "plain", RESULT_OK)
    resp = await client.post("/api/workers/plain/alerts", json={"url": "ftp://example.com/x"})
    assert resp.status == 400
    assert (await resp.json())["detail"] == "url: must be an http(s) URL with a host"
    resp = await client.post("/api/workers/plain/alerts", json={"url": "http://x", "on": ["done"]})
    assert resp.status == 400 and "$.on[0]" in (await resp.json())["detail"]


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://localhost:9/x", "http://10.1.2.3/",
                                 "http://[::1]/", "http://169.254.169.254/latest"])
def test_check_url_refuses_private_addresses(url):
    with pytest.raises(InvalidInput, match="private, loopback and link-local"):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True) == url



@pytest.mark.parametrize("url", ["http://100.64.0.1/hook", "http://[::ffff:127.0.0.1]/x",
                                 "http://[::ffff:10.0.0.1]/x", "http://0.0.0.0/", "http://224.0.0.1/"])
def test_check_url_refuses_what_egress_refuses(url):
    """Alerts use the egress rule: shared address space (100.64/10), IPv4-mapped private
    addresses and multicast are no public targets either."""
    with pytest.raises(InvalidInput, match="private, loopback and link-local"):
        check_url(url, allow_private=False)


async def test_delete_alert_then_404(client, receiver):
    await make_worker(client, "plain", RESULT_OK)
    alert = await (await client.post("/api/workers/plain/alerts",
                                     json={"url": str(receiver.make_url("/ok"))})).json()
    assert (await client.delete(f"/api/workers/plain/alerts/{alert['id']}")).status == 204
    assert (await client.delete(f"/api/workers/plain/alerts/{alert['id']}")).status == 404
    assert await (await client.get("/api/workers/plain/alerts")).json() == []


async def test_worker_stats_timeseries_logs_overview_and_csv(client):
    await make_worker(client, "mixed", RESULT_OK)
    await make_worker(client, "flaky", FAILING)
    ok = [(await trigger(client, "mixed"))["run_id"] for _ in range(2)]
    bad = (await trigger(client, "flaky"))["run_id"]
    for rid in ok + [bad]:
        await wait_run(client, rid)

    stats = await (await client.get("/api/workers/mixed/stats")).json()
    assert stats["total_runs"] == 2 and stats["runs_7d"] == 2 and stats["success_rate_7d"] == 1.0
    assert stats["counts"] == {"completed": 2} and stats["avg_duration_ms"] is not None
    flaky = await (await client.get("/api/workers/flaky/stats")).json()
    assert flaky["error_rate"] == 1.0 and flaky["last_error"].startswith(
        "The process exited with code 1"
    )

    series = await (await client.get("/api/workers/mixed/runs/timeseries")).json()
    assert len(series) == 30 and series[-1]["total"] == 2 and series[-1]["completed"] == 2
    assert sum(p["total"] for p in series[:-1]) == 0
    assert len(await (await client.get("/api/workers/mixed/runs/timeseries?days=7")).json()) == 7

    logs = await (await client.get("/api/workers/flaky/logs?level=warning")).json()
    assert {"run_id": bad, "level": "warning", "message": "bad"} in [
        {k: x[k] for k in ("run_id", "level", "message")} for x in logs]
    assert (await client.get("/api/workers/nobody-there/stats")).status == 404

    overview = await (await client.get("/api/system/overview")).json()
    assert overview["runs_total"] == 3 and overview["runs_failed_7d"] == 1
    assert [r["id"] for r in overview["recent_runs"]] == [bad] + ok[::-1]
    assert any(a["kind"] == "run_failed" and a["run_id"] == bad for a in overview["alerts"])

    resp = await client.get("/api/runs/export.csv?worker_id=mixed")
    assert resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == ok[::-1]
    assert rows[0]["status"] == "completed" and rows[0]["error_code"] == ""


async def test_openapi_documents_run_routes(client):
    spec = await (await client.get("/openapi.json")).json()
    for path in ("/workers/{id}/runs", "/runs/{id}/events", "/approvals/{approval_id}/approve",
                 "/webhooks/{worker_id}", "/runs/export.csv", "/system/overview"):
        assert path in spec["paths"], path
    assert "security" not in spec["paths"]["/webhooks/{worker_id}"]["post"]

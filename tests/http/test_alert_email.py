"""Email alerts (`email_to`) delivered over SMTP (FLOOM_SMTP_URL) to a real local SMTP server
(aiosmtpd), on failed runs and on runs that stop for approval (`on: approval_required`)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from floom_git.http.keys import NOTIFIER
from tests.http.test_runs import make_worker, trigger, wait_for, wait_run
from tests.http.test_runs_reports import FAILING

APPROVAL = """  required: true
  label: Send the invoice?
"""


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def settings(settings, inbox):
    _, port = inbox
    return settings.replace(smtp_url=f"smtp://127.0.0.1:{port}", smtp_from="floom@example.com",
                            public_url="https://floom.example.com", alert_retry_delays=(0.05, 0.05))


async def deliveries(client, worker: str) -> list[dict]:
    return [d for a in await (await client.get(f"/api/workers/{worker}/alerts")).json()
            for d in a["deliveries"]]


async def test_email_alert_on_approval_required_reaches_smtp(client, inbox):
    box, _ = inbox
    await make_worker(client, "invoice", "import json\njson.dump({'status': 'success', "
                      "'outputs': {'total': 12}}, open('result.json', 'w'))\n",
                      extra="approvals:\n" + APPROVAL)
    resp = await client.post("/api/workers/invoice/alerts", json={
        "email_to": ["ops@example.com", "ada@example.com"], "on": ["approval_required"]})
    assert resp.status == 201, await resp.text()
    alert = await resp.json()
    assert alert["url"] is None and alert["email_to"] == ["ops@example.com", "ada@example.com"]
    run = await wait_run(client, (await trigger(client, "invoice"))["run_id"])
    assert run["status"] == "pending_approval"

    async def arrived() -> bool:
        return bool(box.messages)

    await wait_for(arrived, "the approval email")
    to, message = box.messages[0]
    assert sorted(to) == ["ada@example.com", "ops@example.com"]
    assert message["From"] == "floom@example.com"
    assert message["Subject"] == f"[floom] invoice: approval required ({run['id']})"
    text = message.get_content()
    assert run["approval_trail"]["id"] in text and "Send the invoice?" in text
    assert f"https://floom.example.com/api/runs/{run['id']}" in text

    async def recorded() -> bool:
        return bool(await deliveries(client, "invoice"))

    await wait_for(recorded, "the delivery recorded")
    (delivery,) = await deliveries(client, "invoice")
    assert delivery["channel"] == "email" and delivery["ok"] is True
    assert delivery["event"] == "run.approval_required"
    assert delivery["target"] == "ops@example.com, ada@example.com"


async def test_email_alert_on_failure_and_url_together(client, inbox):
    box, _ = inbox
    await make_worker(client, "flaky", FAILING)
    resp = await client.post("/api/workers/flaky/alerts",
                             json={"email_to": ["ops@example.com"], "on": ["failed", "completed"]})
    assert resp.status == 201
    run = await wait_run(client, (await trigger(client, "flaky"))["run_id"])
    assert run["status"] == "failed"

    async def arrived() -> bool:
        return bool(box.messages)

    await wait_for(arrived, "the failure email")
    _, message = box.messages[0]
    assert message["Subject"] == f"[floom] flaky: failed ({run['id']})"
    assert f"Error (execution_error): {run['error']}" in message.get_content()


async def test_email_alert_smtp_down_is_recorded_as_failed(client, inbox):
    box, _ = inbox
    await make_worker(client, "flaky", FAILING)
    await client.post("/api/workers/flaky/alerts", json={"email_to": ["ops@example.com"]})
    notifier = client.server.app[NOTIFIER]
    notifier.settings = notifier.settings.replace(smtp_url=f"smtp://127.0.0.1:{free_port()}")
    await wait_run(client, (await trigger(client, "flaky"))["run_id"])

    async def recorded() -> bool:
        return bool(await deliveries(client, "flaky"))

    await wait_for(recorded, "the failed delivery recorded")
    (delivery,) = await deliveries(client, "flaky")
    assert delivery["ok"] is False and delivery["attempts"] == 3 and delivery["channel"] == "email"
    assert "ConnectionRefusedError" in delivery["error"]
    assert box.messages == []


@pytest.mark.parametrize(("body", "detail"), [
    ({"email_to": ["ops@example.com\r\nBcc: all@example.com"]},
     "request body: Expected one email address"),
    ({"email_to": ["not-an-address"]}, "request body: Expected one email address"),
    ({"on": ["failed"]}, "url: give a url, email_to, or both"),
    ({"email_to": ["ops@example.com"], "on": ["sometimes"]}, "request body: Invalid enum value"),
])
async def test_create_alert_bad_email_is_400(client, body, detail):
    resp = await client.post("/api/workers/word-count/alerts", json=body)
    assert resp.status == 400
    assert (await resp.json())["detail"].startswith(detail)
    assert await (await client.get("/api/workers/word-count/alerts")).json() == []

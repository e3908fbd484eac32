"""Alert delivery: for each run that ends (or stops for approval), POST a signed JSON
notification to the URL of each matching alert and email its addresses over SMTP, retrying with
the configured delays, and record every delivery's outcome."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import smtplib
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from floom_git.config import Settings
from floom_git.redaction import mask_urls_in
from floom_git.runtime import mail
from floom_git.schemas.run import Alert, AlertDelivery, RunRecord
from floom_git.services.alerts import AlertStore
from floom_git.services.egress import blocked_address
from floom_git.services.runs import iso, now
from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.alerts")
EVENTS = {"failed": "failed", "completed": "completed", "pending_approval": "approval_required"}
Attempt = Callable[[], Awaitable[int | None]]  # raises on failure; returns an HTTP status or None


class Refused(Exception):
    """The target answered, but not with success (e.g. HTTP 500)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Notifier:
    def __init__(self, settings: Settings, store: AlertStore) -> None:
        self.settings = settings
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def notify(self, ws: Workspace, record: RunRecord) -> None:
        """Called when a run ends or stops for approval: start deliveries for the alerts that
        ask for that event."""
        event = EVENTS.get(record.status)
        if event is None:
            return
        alerts = self.store.matching(ws.uid, record.worker_id, event)
        if not alerts:
            return
        payload = _payload(ws.id, event, record)
        body = msgspec.json.encode(payload)
        for alert in alerts:
            if alert.url:
                self._start(self._deliver(ws.uid, alert, record, event, "webhook", alert.url,
                                          functools.partial(self._post, alert, event, body)))
            if alert.email_to:
                self._start(self._deliver(ws.uid, alert, record, event, "email",
                                          ", ".join(alert.email_to),
                                          functools.partial(self._mail, alert, payload)))

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, ws_id: str, alert: Alert, record: RunRecord, event: str, channel: str,
                       target: str, attempt: Attempt) -> None:
        delays = (0.0, *self.settings.alert_retry_delays)
        status: int | None = None
        error: str | None = None
        attempts = 0
        for delay in delays:
            await asyncio.sleep(delay)
            attempts += 1
            try:
                status = await attempt()
                error = None
                break
            except Refused as exc:
                status, error = exc.status, str(exc)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError,
                    smtplib.SMTPException) as exc:
                error = mask_urls_in(f"{type(exc).__name__}: {exc}")[:300]
        delivery = AlertDelivery(
            run_id=record.id,
            event=f"run.{event}",
            at=iso(now()),
            ok=error is None,
            attempts=attempts,
            channel=channel,
            target=target,
            status=status,
            error=error,
        )
        if error is not None:
            log.warning("alert %s (%s) for run %s failed after %d attempts: %s", alert.id, channel,
                        record.id, attempts, error)
        await asyncio.to_thread(self.store.record, ws_id, alert.id, delivery)

    async def _post(self, alert: Alert, event: str, body: bytes) -> int:
        assert alert.secret is not None and alert.url is not None
        signature = "sha256=" + hmac.new(alert.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Floom-Signature": signature,
                   "X-Floom-Event": f"run.{event}", "X-Floom-Alert-Id": alert.id}
        await self._check_target(alert.url)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._session.post(alert.url, data=body, headers=headers,
                                      allow_redirects=False) as resp:
            if not 200 <= resp.status < 300:
                raise Refused(resp.status, f"HTTP {resp.status}")
            return resp.status

    async def _mail(self, alert: Alert, payload: dict[str, Any]) -> int | None:
        url = self.settings.smtp_url
        if not url:
            raise ValueError("email alerts need FLOOM_SMTP_URL")
        subject, text = _message(payload, self.settings.public_url)
        await asyncio.to_thread(mail.send, url, self.settings.smtp_from, list(alert.email_to),
                                subject, text)
        return None  # no HTTP status for an email

    async def _check_target(self, url: str) -> None:
        if self.settings.alert_allow_private_urls:
            return
        host = urlsplit(url).hostname or ""
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        if any(blocked_address(str(info[4][0])) for info in infos):
            raise ValueError(f"{host} resolves to a private address")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def _payload(ws_id: str, event: str, record: RunRecord) -> dict[str, Any]:
    approval = record.approval if event == "approval_required" else None
    return {
        "event": f"run.{event}", "workspace_id": ws_id, "worker_id": record.worker_id,
        "worker_name": record.worker_name, "run_id": record.id, "status": record.status,
        "error": record.error, "error_code": record.error_code, "outputs": record.outputs,
        "completed_at": record.completed_at, "duration_ms": record.duration_ms,
        "approval": None if approval is None else {
            "id": approval.id, "label": approval.label, "preview": approval.preview,
            "expires_at": approval.expires_at},
    }


def _message(payload: dict[str, Any], public_url: str | None) -> tuple[str, str]:
    """Subject and plain-text body of an alert email."""
    event = payload["event"].removeprefix("run.").replace("_", " ")
    subject = f"[floom] {payload['worker_name']}: {event} ({payload['run_id']})"
    lines = [f"Worker:    {payload['worker_name']} ({payload['worker_id']})",
             f"Workspace: {payload['workspace_id']}",
             f"Run:       {payload['run_id']}",
             f"Status:    {payload['status']}"]
    if public_url:
        lines.append(f"Link:      {public_url.rstrip('/')}/api/runs/{payload['run_id']}")
    if payload["error"]:
        lines += ["", f"Error ({payload['error_code']}): {payload['error']}"]
    if payload["approval"]:
        approval = payload["approval"]
        lines += ["", f"Waiting for approval {approval['id']}: {approval['label']}",
                  f"Expires:   {approval['expires_at']}", "", approval["preview"]]
    elif payload["outputs"] is not None:
        lines += [
            "",
            "Outputs:",
            json.dumps(payload["outputs"], indent=2, ensure_ascii=False)[:4000],
        ]
    return subject, "\n".join(lines) + "\n"

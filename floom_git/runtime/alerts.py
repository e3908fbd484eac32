"""Alert delivery: POST a signed JSON notification for each finished run to the worker's alert
URLs, retrying with the configured delays, and record every delivery's outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
from urllib.parse import urlsplit

import aiohttp
import msgspec

from floom_git.config import Settings
from floom_git.redaction import mask_urls_in
from floom_git.schemas.run import Alert, AlertDelivery, RunRecord
from floom_git.services.alerts import AlertStore, is_private_host
from floom_git.services.runs import iso, now
from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.alerts")


class Notifier:
    def __init__(self, settings: Settings, store: AlertStore) -> None:
        self.settings = settings
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def notify(self, ws: Workspace, record: RunRecord) -> None:
        """Called when a run ends: start deliveries for the alerts that ask for its status."""
        if record.status not in ("failed", "completed"):
            return
        alerts = self.store.matching(ws.uid, record.worker_id, record.status)
        if not alerts:
            return
        payload = msgspec.json.encode({
            "event": f"run.{record.status}", "workspace_id": ws.id, "worker_id": record.worker_id,
            "run_id": record.id, "status": record.status, "error": record.error,
            "error_code": record.error_code, "outputs": record.outputs,
            "completed_at": record.completed_at, "duration_ms": record.duration_ms,
        })
        for alert in alerts:
            task = asyncio.get_running_loop().create_task(self._deliver(ws.uid, alert, record, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, ws_id: str, alert: Alert, record: RunRecord, payload: bytes) -> None:
        assert alert.secret is not None
        signature = "sha256=" + hmac.new(alert.secret.encode(), payload, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Floom-Signature": signature,
                   "X-Floom-Event": f"run.{record.status}", "X-Floom-Alert-Id": alert.id}
        delays = (0.0, *self.settings.alert_retry_delays)
        status: int | None = None
        error: str | None = None
        attempts = 0
        for delay in delays:
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await self._check_target(alert.url)
                if self._session is None:
                    self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
                async with self._session.post(alert.url, data=payload, headers=headers,
                                              allow_redirects=False) as resp:
                    status = resp.status
                    if 200 <= resp.status < 300:
                        error = None
                        break
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                error = mask_urls_in(f"{type(exc).__name__}: {exc}")[:300]
        delivery = AlertDelivery(run_id=record.id, event=f"run.{record.status}", at=iso(now()),
                                 ok=error is None, attempts=attempts, status=status, error=error)
        if error is not None:
            log.warning("alert %s for run %s failed after %d attempts: %s", alert.id, record.id,
                        attempts, error)
        await asyncio.to_thread(self.store.record, ws_id, alert.id, delivery)

    async def _check_target(self, url: str) -> None:
        if self.settings.alert_allow_private_urls:
            return
        host = urlsplit(url).hostname or ""
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        if any(is_private_host(str(info[4][0])) for info in infos):
            raise ValueError(f"{host} resolves to a private address")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

"""Worker alerts: a URL that receives a signed JSON notification, and/or email addresses that
receive a message, when a run of the worker ends `failed` or `completed` or stops for approval
(`approval_required`). Kept in system/alerts/<ws uid>.json (the workspace's internal id; each
alert's signing secret is server state, not workspace content) with the last deliveries of each
alert, so failures show in the API. Targets are shown with their credentials masked."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from floom_git.errors import InvalidInput, NotFound
from floom_git.redaction import mask_url
from floom_git.schemas.run import Alert, AlertCreate, AlertDelivery
from floom_git.services.egress import blocked_host
from floom_git.storage import private

KEEP_DELIVERIES = 20


def check_url(url: str, allow_private: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url: must be an http(s) URL with a host")
    if not allow_private and blocked_host(parts.hostname):  # the egress rule
        raise InvalidInput("url: private, loopback and link-local addresses are not allowed")
    return url


def shown(alert: Alert) -> Alert:
    """The alert as the API shows it: credentials in its URL masked (the store keeps them)."""
    return msgspec.structs.replace(alert, url=mask_url(alert.url) if alert.url else None)


class AlertStore:
    def __init__(self, system_dir: Path) -> None:
        self._dir = system_dir / "alerts"
        self._lock = threading.Lock()

    def _path(self, ws_id: str) -> Path:
        return self._dir / f"{ws_id}.json"

    def _load(self, ws_id: str) -> dict[str, Alert]:
        try:
            raw = json.loads(self._path(ws_id).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: msgspec.convert(v, Alert) for k, v in raw.items()}

    def _save(self, ws_id: str, data: dict[str, Alert]) -> None:
        private.write_bytes(
            self._path(ws_id), msgspec.json.format(msgspec.json.encode(data), indent=1)
        )

    # The routes' calls (for_worker, create, delete) read and write the file off the event loop.
    async def for_worker(self, ws_id: str, worker_id: str) -> list[Alert]:
        """The worker's alerts, without their secrets and with credentials in URLs masked."""
        def read() -> list[Alert]:
            return [msgspec.structs.replace(shown(a), secret=None)
                    for a in self._load(ws_id).values() if a.worker_id == worker_id]
        return await asyncio.to_thread(read)

    async def create(self, ws_id: str, worker_id: str, body: AlertCreate, allow_private: bool,
                     email_enabled: bool) -> Alert:
        """A new alert; the response carries its signing secret (shown once). InvalidInput when
        it has no target, a bad URL, or email targets while the server has no SMTP server."""
        return await asyncio.to_thread(self._create, ws_id, worker_id, body, allow_private,
                                       email_enabled)

    def _create(self, ws_id: str, worker_id: str, body: AlertCreate, allow_private: bool,
                email_enabled: bool) -> Alert:
        if body.url is None and not body.email_to:
            raise InvalidInput("url: give a url, email_to, or both")
        if body.url is not None:
            check_url(body.url, allow_private)
        if body.email_to and not email_enabled:
            raise InvalidInput("email_to: this server sends no email (set FLOOM_SMTP_URL)")
        if not body.on:
            raise InvalidInput("on: list at least one of failed, completed, approval_required")
        alert = Alert(id=f"alrt_{secrets.token_hex(6)}", worker_id=worker_id, url=body.url,
                      email_to=list(dict.fromkeys(body.email_to)),
                      on=sorted(set(body.on)), description=body.description,
                      created_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
                      .replace("+00:00", "Z"), secret=secrets.token_hex(32))
        with self._lock:
            data = self._load(ws_id)
            data[alert.id] = alert
            self._save(ws_id, data)
        return shown(alert)

    async def delete(self, ws_id: str, worker_id: str, alert_id: str) -> None:
        await asyncio.to_thread(self._delete, ws_id, worker_id, alert_id)

    def _delete(self, ws_id: str, worker_id: str, alert_id: str) -> None:
        with self._lock:
            data = self._load(ws_id)
            if alert_id not in data or data[alert_id].worker_id != worker_id:
                raise NotFound("Alert not found")
            del data[alert_id]
            self._save(ws_id, data)

    def drop(self, ws_id: str) -> None:
        """Forget every alert of a deleted workspace."""
        with self._lock:
            self._path(ws_id).unlink(missing_ok=True)

    def matching(self, ws_id: str, worker_id: str, event: str) -> list[Alert]:
        return [a for a in self._load(ws_id).values() if a.worker_id == worker_id and event in a.on]

    def record(self, ws_id: str, alert_id: str, delivery: AlertDelivery) -> None:
        with self._lock:
            data = self._load(ws_id)
            alert = data.get(alert_id)
            if alert is None:
                return
            alert.deliveries = ([delivery] + list(alert.deliveries))[:KEEP_DELIVERIES]
            self._save(ws_id, data)

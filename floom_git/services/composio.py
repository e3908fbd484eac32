"""Composio trigger events (POST /composio-events): the Standard Webhooks signature Composio
signs deliveries with (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
HMAC-SHA256 of "<id>.<timestamp>.<body>">`, key COMPOSIO_WEBHOOK_SIGNING_KEY, `whsec_` keys
base64-decoded) and which workers' `composio` triggers an event matches.

A trigger `{type: composio, composio: {event, connection_id?, trigger_id?, filters?}}` matches an
event of that trigger slug (any case), from that connected account and trigger when given, whose
data has each filter's value at its (dotted) path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from floom_git.errors import Unauthenticated
from floom_git.services.workspaces import Workspace

TOLERANCE_SECONDS = 300  # a signed timestamp further off than this is a replay or a stale retry
REFUSED = "Invalid Composio webhook signature"


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `webhook-signature` value for a delivery (what Composio sends; tests sign with it)."""
    mac = hmac.new(_key(secret), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """The delivery id when the signature is good and fresh; Unauthenticated otherwise."""
    delivery = headers.get("webhook-id") or ""
    stamp = headers.get("webhook-timestamp") or ""
    given = headers.get("webhook-signature") or ""
    if not delivery or not stamp.isdigit() or not given:
        raise Unauthenticated(REFUSED)
    if abs((now if now is not None else time.time()) - int(stamp)) > TOLERANCE_SECONDS:
        raise Unauthenticated(f"{REFUSED}: the timestamp is too old or in the future")
    expected = sign(secret, delivery, stamp, body).encode()
    # Several signatures may be sent (key rotation), space-separated.
    if any(hmac.compare_digest(part.encode(errors="replace"), expected) for part in given.split()):
        return delivery
    raise Unauthenticated(REFUSED)


@dataclass(frozen=True)
class Event:
    slug: str
    connection_id: str | None
    trigger_id: str | None
    data: Any


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_event(body: Any) -> Event:
    """The trigger slug, connected account, trigger id and data of an event, in Composio's
    current shape (`metadata` + `data`) or the older flat one (`trigger_name`, `payload`)."""
    if not isinstance(body, dict):
        return Event("", None, None, body)
    meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    slug = (_text(meta.get("trigger_slug")) or _text(body.get("trigger_slug"))
            or _text(body.get("trigger_name")) or _text(body.get("type")) or "")
    connection = (
        _text(meta.get("connected_account_id"))
        or _text(body.get("connection_id"))
        or _text(body.get("connectedAccountId"))
        or _text(body.get("connected_account_id"))
    )
    trigger = _text(meta.get("trigger_id")) or _text(body.get("trigger_id"))
    data = body.get("data", body.get("payload"))
    return Event(slug, connection, trigger, data)


def _at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def matches(spec: Mapping[str, Any] | None, event: Event) -> bool:
    if not spec or not event.slug or str(spec.get("event", "")).lower() != event.slug.lower():
        return False
    for key, value in (("connection_id", event.connection_id), ("trigger_id", event.trigger_id)):
        if spec.get(key) and spec[key] != value:
            return False
    filters = spec.get("filters") or {}
    return isinstance(filters, dict) and all(_at(event.data, k) == v for k, v in filters.items())


def matching_workers(ws: Workspace, event: Event) -> list[str]:
    """Ids of the ready workers with a composio trigger matching `event`."""
    out = []
    for entry in ws.workers.all():
        m = entry.manifest
        if m is None or entry.status != "ready":
            continue
        if any(t.type == "composio" and matches(t.composio, event) for t in m.all_triggers):
            out.append(entry.id)
    return out

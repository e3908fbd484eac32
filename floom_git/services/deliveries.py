"""Runs started by outside senders once their credential checked out: webhook deliveries and
Composio trigger events, each started once per delivery id (the receipts of
services/webhooks.py), and the rotation of a worker's webhook secret."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from floom_git.errors import FloomError, NotFound
from floom_git.schemas.integrations import EventRun
from floom_git.schemas.run import WebhookAccepted
from floom_git.services import composio, runs, workers
from floom_git.services.webhooks import WebhookStore
from floom_git.services.workspaces import Workspace

MAX_DELIVERY_ID = 200


async def rotate_secret(store: WebhookStore, ws: Workspace, worker_id: str) -> tuple[str, str]:
    """A new webhook secret for the worker: the raw secret (shown once) and its URL token."""
    workers.entry_or_404(ws, worker_id)
    return await asyncio.to_thread(store.rotate, ws.uid, worker_id)


def check_webhook(ws: Workspace, worker_id: str) -> None:
    """NotFound unless the worker has a webhook trigger (asked once the secret checked out: the
    caller may learn why)."""
    entry = ws.workers.get(worker_id)
    if not (entry and entry.manifest
            and any(t.type == "webhook" for t in entry.manifest.all_triggers)):
        raise NotFound(f"Worker {worker_id} has no webhook trigger")


def webhook_inputs(body: bytes) -> dict[str, Any]:
    """A delivery's body as run inputs: a JSON object as is, other JSON under `event`, anything
    else as text under `raw`."""
    if not body.strip():
        return {}
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {"raw": body.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"event": value}


async def webhook_run(store: WebhookStore, ws: Workspace, worker_id: str, body: bytes,
                      delivery: str | None) -> WebhookAccepted:
    """Start the worker's run for a verified delivery (its run store attached to the engine);
    a delivery id seen before answers the run it started."""
    key = delivery[:MAX_DELIVERY_ID] if delivery else None
    if key:
        earlier = await asyncio.to_thread(store.seen, ws.uid, worker_id, key)
        if earlier:
            return WebhookAccepted(status="queued", run_id=earlier, deduped=True)
    record = runs.create_run(ws, worker_id, webhook_inputs(body), trigger_source="webhook",
                             trigger_ref=key)
    if key:
        await asyncio.to_thread(store.remember, ws.uid, worker_id, key, record.id)
    return WebhookAccepted(status=record.status, run_id=record.id)


async def composio_runs(receipts: WebhookStore, ws: Workspace, payload: Any,
                        delivery: str) -> tuple[composio.Event, list[EventRun]]:
    """The event of a verified Composio delivery and a run of each worker whose trigger matches
    it (its run store attached to the engine); a worker that cannot start is reported, not
    fatal."""
    event = composio.parse_event(payload)
    started: list[EventRun] = []
    key = f"composio:{delivery}"
    for worker_id in composio.matching_workers(ws, event):
        earlier = await asyncio.to_thread(receipts.seen, ws.uid, worker_id, key)
        if earlier:
            started.append(EventRun(worker_id=worker_id, run_id=earlier, deduped=True))
            continue
        try:
            record = runs.create_run(ws, worker_id, {"event": payload}, trigger_source="composio",
                                     trigger_ref=delivery)
        except FloomError as exc:
            started.append(EventRun(worker_id=worker_id, skipped=exc.message))
            continue
        await asyncio.to_thread(receipts.remember, ws.uid, worker_id, key, record.id)
        started.append(EventRun(worker_id=worker_id, run_id=record.id))
    return event, started

"""POST /composio-events: Composio's signed trigger events start the workers whose `composio`
trigger matches (public route; the signature is the credential). A delivery id seen before
starts nothing new, as webhooks do."""

from __future__ import annotations

import json

from aiohttp import web

from floom_git.errors import InvalidInput
from floom_git.http import wire
from floom_git.http.handlers.automation import WORKSPACE_HEADER
from floom_git.http.handlers.common import settings
from floom_git.http.keys import ENGINE, MANAGER, WEBHOOKS
from floom_git.schemas.integrations import ComposioAccepted
from floom_git.services import composio, deliveries


async def composio_events(request: web.Request) -> web.Response:
    cfg = settings(request)
    if not cfg.composio_webhook_signing_key:
        raise web.HTTPServiceUnavailable(
            text="Composio events are not configured: set COMPOSIO_WEBHOOK_SIGNING_KEY")
    body = await wire.read_body(request, cfg.max_json_bytes)
    delivery = composio.verify(cfg.composio_webhook_signing_key, request.headers, body)[:200]
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidInput("request body: malformed JSON") from None
    ws = request.app[MANAGER].get(request.headers.get(WORKSPACE_HEADER)
                                  or request.query.get("workspace") or "default")
    await request.app[ENGINE].attach(ws)
    event, started = await deliveries.composio_runs(request.app[WEBHOOKS], ws, payload, delivery)
    return wire.json(ComposioAccepted(
        status="accepted", delivery_id=delivery, event=event.slug, runs=started,
        deduped=bool(started) and all(r.deduped for r in started)))

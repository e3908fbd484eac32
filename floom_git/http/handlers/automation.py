"""Routes around runs: webhooks (public, own token check), webhook secret rotation, alerts,
worker run stats, timeseries and logs, the system overview and the runs CSV export."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from floom_git.errors import NotFound, Unauthenticated
from floom_git.http import content, wire
from floom_git.http.handlers.common import settings, workspace
from floom_git.http.handlers.runs import attached, run_query, webhook_url
from floom_git.http.keys import ALERTS, ENGINE, MANAGER, WEBHOOKS
from floom_git.http.ratelimit import auth_attempt, client_ip
from floom_git.schemas import run as schema
from floom_git.services import approvals, run_stats, runs, workers
from floom_git.services.webhooks import REFUSED
from floom_git.services.workspaces import Workspace

WORKSPACE_HEADER = "x-workeros-workspace"  # as the auth middleware reads it
WORKSPACE_COOKIE = "floom_workspace"
DELIVERY_HEADERS = ("X-Request-ID", "X-Delivery-ID", "X-Floom-Delivery", "X-GitHub-Delivery")


def _has_webhook(ws: Workspace, worker_id: str) -> bool:
    entry = ws.workers.get(worker_id)
    return bool(entry and entry.manifest and any(t.type == "webhook" for t in entry.manifest.all_triggers))


async def _rotated(request: web.Request, ws: Workspace, worker_id: str) -> schema.WebhookSecret:
    workers.entry_or_404(ws, worker_id)
    raw, token = await asyncio.to_thread(request.app[WEBHOOKS].rotate, ws.uid, worker_id)
    return schema.WebhookSecret(worker_id=worker_id, webhook_secret=raw, webhook_token=token,
                                webhook_url=webhook_url(request, worker_id, token))


async def rotate_secret(request: web.Request) -> web.Response:
    ws = workspace(request)
    return wire.json(await _rotated(request, ws, request.match_info["id"]))


def _webhook_inputs(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {"raw": body.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"event": value}


async def webhook(request: web.Request) -> web.Response:
    """Start a run from a webhook delivery; the JSON body becomes the inputs.

    Until the token or signature checks out, every refusal is the same 401 (unknown workspace,
    unknown worker, no webhook trigger, no secret, wrong token): a caller without the secret
    learns nothing about which workspaces exist or which workers take webhooks.
    """
    ws_id = (request.headers.get(WORKSPACE_HEADER) or request.query.get("workspace")
             or request.cookies.get(WORKSPACE_COOKIE) or "default")
    wid = request.match_info["worker_id"]
    cfg = settings(request)
    store = request.app[WEBHOOKS]
    manager = request.app[MANAGER]
    ws = manager.get(ws_id) if manager.exists(ws_id) else None
    with auth_attempt(request):
        store.check_rate(ws.uid if ws is not None else "?", wid[:64], client_ip(request),
                         cfg.webhook_rate_limit, cfg.webhook_rate_window)
        body = await wire.read_body(request, cfg.max_json_bytes)
        if ws is None:
            raise Unauthenticated(REFUSED)
        store.verify(ws.uid, wid, request.query.get("token"),
                     request.headers.get("X-Floom-Signature"),
                     body)
    if not _has_webhook(ws, wid):  # the secret checked out: the caller may learn why
        raise NotFound(f"Worker {wid} has no webhook trigger")
    await request.app[ENGINE].attach(ws)
    delivery = next((request.headers[h] for h in DELIVERY_HEADERS if request.headers.get(h)), None)
    if delivery:
        earlier = store.seen(ws.uid, wid, delivery[:200])
        if earlier:
            return wire.json(schema.WebhookAccepted(status="queued", run_id=earlier, deduped=True))
    record = runs.create_run(ws, wid, _webhook_inputs(body), trigger_source="webhook",
                             trigger_ref=delivery[:200] if delivery else None)
    if delivery:
        await asyncio.to_thread(store.remember, ws.uid, wid, delivery[:200], record.id)
    return wire.json(schema.WebhookAccepted(status=record.status, run_id=record.id))


# -- alerts -------------------------------------------------------------------------------------
async def list_alerts(request: web.Request) -> web.Response:
    ws = workspace(request)
    wid = request.match_info["id"]
    workers.entry_or_404(ws, wid)
    return wire.json(await asyncio.to_thread(request.app[ALERTS].for_worker, ws.uid, wid))


async def create_alert(request: web.Request) -> web.Response:
    ws = workspace(request)
    wid = request.match_info["id"]
    workers.entry_or_404(ws, wid)
    body = await wire.decode(request, schema.AlertCreate, settings(request).max_json_bytes)
    cfg = settings(request)
    alert = await asyncio.to_thread(request.app[ALERTS].create, ws.uid, wid, body,
                                    cfg.alert_allow_private_urls, bool(cfg.smtp_url))
    return wire.json(alert, status=201)


async def delete_alert(request: web.Request) -> web.Response:
    ws = workspace(request)
    await asyncio.to_thread(request.app[ALERTS].delete, ws.uid, request.match_info["id"],
                            request.match_info["alert_id"])
    return web.Response(status=204)


# -- numbers ------------------------------------------------------------------------------------
async def worker_stats(request: web.Request) -> web.Response:
    ws = await attached(request)
    return wire.json(run_stats.worker_stats(ws, request.match_info["id"]))


async def worker_timeseries(request: web.Request) -> web.Response:
    ws = await attached(request)
    days = wire.q_int(request, "days", 30, 1, 90)
    return wire.json(run_stats.timeseries(ws, request.match_info["id"], days))


async def worker_logs(request: web.Request) -> web.Response:
    ws = await attached(request)
    level = wire.q_choice(request, "level", schema.LEVELS, None)
    since = request.query.get("since")
    lines = await asyncio.to_thread(
        run_stats.worker_logs, ws, request.match_info["id"], level,
        runs.iso(runs.parse_iso(since, "since")) if since else None,
        wire.q_limit(request, 200, 1000))
    return wire.json(lines)


async def system_overview(request: web.Request) -> web.Response:
    ws = await attached(request)
    return wire.json(run_stats.overview(ws, approvals.pending_count(ws)))


async def export_csv(request: web.Request) -> web.Response:
    ws = await attached(request)
    query = run_query(request, max_limit=10_000, default_limit=1000)
    text = run_stats.export_csv(ws, query)
    return content.user_file(text.encode(), "text/csv", "runs.csv", charset="utf-8")

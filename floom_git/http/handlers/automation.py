"""Routes around runs: webhooks (public, own token check), webhook secret rotation, alerts,
worker run stats, timeseries and logs, the system overview and the runs CSV export."""

from __future__ import annotations

from aiohttp import web

from floom_git.errors import Unauthenticated
from floom_git.http import content, wire
from floom_git.http.handlers.common import settings, workspace
from floom_git.http.handlers.runs import attached, run_query, webhook_url
from floom_git.http.keys import ALERTS, ENGINE, MANAGER, WEBHOOKS
from floom_git.http.ratelimit import auth_attempt, client_ip
from floom_git.schemas import run as schema
from floom_git.services import approvals, deliveries, run_stats, runs, workers
from floom_git.services.webhooks import REFUSED

WORKSPACE_HEADER = "x-workeros-workspace"  # as the auth middleware reads it
WORKSPACE_COOKIE = "floom_workspace"
DELIVERY_HEADERS = ("X-Request-ID", "X-Delivery-ID", "X-Floom-Delivery", "X-GitHub-Delivery")


async def rotate_secret(request: web.Request) -> web.Response:
    wid = request.match_info["id"]
    raw, token = await deliveries.rotate_secret(request.app[WEBHOOKS], workspace(request), wid)
    return wire.json(schema.WebhookSecret(worker_id=wid, webhook_secret=raw, webhook_token=token,
                                          webhook_url=webhook_url(request, wid, token)))


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
    deliveries.check_webhook(ws, wid)
    await request.app[ENGINE].attach(ws)
    delivery = next((request.headers[h] for h in DELIVERY_HEADERS if request.headers.get(h)), None)
    return wire.json(await deliveries.webhook_run(store, ws, wid, body, delivery))


# -- alerts -------------------------------------------------------------------------------------
async def list_alerts(request: web.Request) -> web.Response:
    ws = workspace(request)
    wid = request.match_info["id"]
    workers.entry_or_404(ws, wid)
    return wire.json(await request.app[ALERTS].for_worker(ws.uid, wid))


async def create_alert(request: web.Request) -> web.Response:
    ws = workspace(request)
    wid = request.match_info["id"]
    workers.entry_or_404(ws, wid)
    body = await wire.decode(request, schema.AlertCreate, settings(request).max_json_bytes)
    cfg = settings(request)
    alert = await request.app[ALERTS].create(ws.uid, wid, body, cfg.alert_allow_private_urls,
                                             bool(cfg.smtp_url))
    return wire.json(alert, status=201)


async def delete_alert(request: web.Request) -> web.Response:
    ws = workspace(request)
    await request.app[ALERTS].delete(ws.uid, request.match_info["id"],
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
    lines = await run_stats.worker_logs(
        ws, request.match_info["id"], level,
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

"""Workers routes. Every route that answers with a worker answers with the same detail
(services/worker_views.py), seen by the caller: their role, stars and the webhook URL."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import content, wire
from floom_git.http.handlers.common import actor, settings
from floom_git.http.handlers.runs import attached, webhook_url
from floom_git.http.keys import STARS, WEBHOOKS
from floom_git.schemas.api import WorkerCreate, WorkerFilesPut, WorkerVisibility
from floom_git.schemas.run import WorkerPatch
from floom_git.services import worker_views, workers
from floom_git.services.webhooks import url_token
from floom_git.services.workspaces import Workspace


def viewer(request: web.Request, ws: Workspace) -> worker_views.Viewer:
    who = actor(request)
    hooks = request.app[WEBHOOKS]

    def url(worker_id: str) -> str | None:
        digest = hooks.digest(ws.uid, worker_id)
        return webhook_url(request, worker_id, url_token(digest, worker_id)) if digest else None

    return worker_views.Viewer(role=who.role, starred=request.app[STARS].of(ws.uid, who.user_id),
                               webhook_url=url)


async def respond(request: web.Request, ws: Workspace, worker_id: str, status: int = 200,
                  new_webhook_secret: str | None = None) -> web.Response:
    detail = worker_views.detail(ws, worker_id, viewer(request, ws), new_webhook_secret)
    return wire.json(detail, status)


async def list_workers(request: web.Request) -> web.Response:
    ws = await attached(request)
    query = workers.ListQuery(
        limit=wire.q_limit(request, 100, 500),
        offset=wire.q_int(request, "offset", 0, 0),
        status=request.query.get("status") or None,
        starred=wire.q_bool(request, "starred"),
        q=request.query.get("q") or None,
        shape=wire.q_choice(request, "shape", ("full", "list"), "full") or "full",
        include_archived=bool(wire.q_bool(request, "include_archived")),
    )
    items, total = worker_views.list_workers(ws, query, viewer(request, ws))
    return wire.json(items, headers={"X-Total-Count": str(total)})


async def create_worker(request: web.Request) -> web.Response:
    cfg = settings(request)
    ws = await attached(request)
    body = await wire.decode(request, WorkerCreate, cfg.max_file_bytes * 2)
    worker_id = await workers.create(ws, actor(request), body, cfg.max_file_bytes)
    return await respond(request, ws, worker_id, 201)


async def get_worker(request: web.Request) -> web.Response:
    ws = await attached(request)
    return await respond(request, ws, request.match_info["id"])


async def put_worker(request: web.Request) -> web.Response:
    cfg = settings(request)
    ws = await attached(request)
    body = await wire.decode(request, WorkerCreate, cfg.max_file_bytes * 2)
    wid = request.match_info["id"]
    await workers.update_source(ws, actor(request), wid, body, cfg.max_file_bytes)
    return await respond(request, ws, wid)


async def put_files(request: web.Request) -> web.Response:
    cfg = settings(request)
    ws = await attached(request)
    body = await wire.decode(request, WorkerFilesPut, cfg.max_file_bytes * 2)
    wid = request.match_info["id"]
    await workers.replace_files(ws, actor(request), wid, body.files, cfg.max_file_bytes)
    return await respond(request, ws, wid)


def _flag(key: str, value: object, verb: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        ws = await attached(request)
        wid = request.match_info["id"]
        await workers.set_field(ws, actor(request), wid, key, value, f"worker {wid}: {verb}")
        return await respond(request, ws, wid)

    handler.__name__ = f"{verb}_worker"
    return handler


pause = _flag("paused", True, "pause")
resume = _flag("paused", None, "resume")
archive = _flag("archived", True, "archive")
restore = _flag("archived", None, "restore")


async def set_visibility(request: web.Request) -> web.Response:
    ws = await attached(request)
    body = await wire.decode(request, WorkerVisibility, 4096)
    wid = request.match_info["id"]
    await workers.set_field(ws, actor(request), wid, "visibility", body.visibility,
                            f"worker {wid}: set visibility to {body.visibility}")
    return await respond(request, ws, wid)


async def patch_worker(request: web.Request) -> web.Response:
    """The reference's instance settings, each an edit of worker.yml, all in one commit; plus
    `starred` (yours, kept on the server) and `webhook_secret_rotate` (the new secret is shown
    once, in `new_webhook_secret`)."""
    ws = await attached(request)
    wid = request.match_info["id"]
    body = await wire.decode(request, WorkerPatch, settings(request).max_json_bytes)
    secret = await workers.patch(ws, actor(request), wid, body, request.app[STARS],
                                 request.app[WEBHOOKS])
    return await respond(request, ws, wid, new_webhook_secret=secret)


async def delete_worker(request: web.Request) -> web.Response:
    ws = await attached(request)
    wid = request.match_info["id"]
    result = await workers.delete(ws, actor(request), wid, request.app[STARS])
    return wire.json(result)


async def list_versions(request: web.Request) -> web.Response:
    ws = await attached(request)
    items = await workers.versions(
        ws, request.match_info["id"],
        wire.q_limit(request, 50, 500), wire.q_int(request, "offset", 0, 0),
    )
    return wire.json(items)


async def version_files(request: web.Request) -> web.Response:
    ws = await attached(request)
    result = await workers.version_files(ws, request.match_info["id"], request.match_info["sha"])
    return wire.json(result)


async def rollback(request: web.Request) -> web.Response:
    ws = await attached(request)
    wid = request.match_info["id"]
    await workers.rollback(ws, actor(request), wid, request.match_info["sha"])
    return await respond(request, ws, wid)


async def sample_input(request: web.Request) -> web.Response:
    ws = await attached(request)
    return wire.json(workers.sample_input(ws, request.match_info["id"]))


async def bundle(request: web.Request) -> web.Response:
    ws = await attached(request)
    wid = request.match_info["id"]
    data = await workers.bundle_zip(ws, wid)
    return content.user_file(data, "application/zip", f"{wid}.zip")


async def reload(request: web.Request) -> web.Response:
    ws = await attached(request)
    return wire.json(await workers.reload(ws))

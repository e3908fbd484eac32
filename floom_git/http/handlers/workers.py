"""Workers routes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from floom_git.http import content, wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.schemas.api import WorkerCreate, WorkerFilesPut, WorkerVisibility
from floom_git.services import workers


async def list_workers(request: web.Request) -> web.Response:
    query = workers.ListQuery(
        limit=wire.q_int(request, "limit", 100, 1, 500),
        offset=wire.q_int(request, "offset", 0, 0),
        status=request.query.get("status") or None,
        starred=wire.q_bool(request, "starred"),
        q=request.query.get("q") or None,
        shape=wire.q_choice(request, "shape", ("full", "list"), "full") or "full",
        include_archived=bool(wire.q_bool(request, "include_archived")),
    )
    items, total = workers.list_workers(workspace(request), query)
    return wire.json(items, headers={"X-Total-Count": str(total)})


async def create_worker(request: web.Request) -> web.Response:
    cfg = settings(request)
    body = await wire.decode(request, WorkerCreate, cfg.max_file_bytes * 2)
    return wire.json(await workers.create(workspace(request), actor(request), body, cfg.max_file_bytes), 201)


async def get_worker(request: web.Request) -> web.Response:
    ws = workspace(request)
    return wire.json(workers.detail(ws, request.match_info["id"]))


async def put_files(request: web.Request) -> web.Response:
    cfg = settings(request)
    body = await wire.decode(request, WorkerFilesPut, cfg.max_file_bytes * 2)
    detail = await workers.replace_files(
        workspace(request), actor(request), request.match_info["id"], body.files, cfg.max_file_bytes
    )
    return wire.json(detail)


def _flag(key: str, value: object, verb: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        wid = request.match_info["id"]
        detail = await workers.set_field(
            workspace(request), actor(request), wid, key, value, f"worker {wid}: {verb}"
        )
        return wire.json(detail)

    handler.__name__ = f"{verb}_worker"
    return handler


pause = _flag("paused", True, "pause")
resume = _flag("paused", None, "resume")
archive = _flag("archived", True, "archive")
restore = _flag("archived", None, "restore")


async def set_visibility(request: web.Request) -> web.Response:
    body = await wire.decode(request, WorkerVisibility, 4096)
    wid = request.match_info["id"]
    detail = await workers.set_field(
        workspace(request), actor(request), wid, "visibility", body.visibility,
        f"worker {wid}: set visibility to {body.visibility}",
    )
    return wire.json(detail)


async def delete_worker(request: web.Request) -> web.Response:
    return wire.json(await workers.delete(workspace(request), actor(request), request.match_info["id"]))


async def list_versions(request: web.Request) -> web.Response:
    items = await workers.versions(
        workspace(request), request.match_info["id"],
        wire.q_int(request, "limit", 50, 1, 500), wire.q_int(request, "offset", 0, 0),
    )
    return wire.json(items)


async def version_files(request: web.Request) -> web.Response:
    ws = workspace(request)
    result = await asyncio.to_thread(
        workers.version_files, ws, request.match_info["id"], request.match_info["sha"]
    )
    return wire.json(result)


async def rollback(request: web.Request) -> web.Response:
    detail = await workers.rollback(
        workspace(request), actor(request), request.match_info["id"], request.match_info["sha"]
    )
    return wire.json(detail)


async def sample_input(request: web.Request) -> web.Response:
    return wire.json(workers.sample_input(workspace(request), request.match_info["id"]))


async def bundle(request: web.Request) -> web.Response:
    wid = request.match_info["id"]
    data = await asyncio.to_thread(workers.bundle_zip, workspace(request), wid)
    return content.user_file(data, "application/zip", f"{wid}.zip")


async def reload(request: web.Request) -> web.Response:
    return wire.json(await workers.reload(workspace(request)))

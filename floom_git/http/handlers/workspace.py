"""Workspace instructions (workspace.md) and the workspace changelog."""

from __future__ import annotations

from aiohttp import web

from floom_git import paths
from floom_git.errors import InvalidInput
from floom_git.http import wire
from floom_git.http.content import user_file
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.schemas.api import WorkspacePut
from floom_git.services import instructions


async def get_instructions(request: web.Request) -> web.Response:
    doc = await instructions.current(workspace(request))
    if "application/json" in request.headers.get("Accept", ""):
        return wire.json(doc)
    return user_file(doc.content.encode(), "text/markdown", paths.WORKSPACE_MD, charset="utf-8")


async def put_instructions(request: web.Request) -> web.Response:
    """Raw markdown body, or JSON {content} with Content-Type: application/json."""
    cfg = settings(request)
    raw = await wire.read_body(request, cfg.max_file_bytes)
    if request.content_type == "application/json":
        content = wire.decode_bytes(raw, WorkspacePut).content
    else:
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("body: workspace instructions must be UTF-8 text") from None
    return wire.json(
        await instructions.write(workspace(request), actor(request), content, cfg.max_file_bytes)
    )


async def list_versions(request: web.Request) -> web.Response:
    return wire.json(await instructions.versions(workspace(request),
                                                 wire.q_limit(request, 50, 500),
                                                 wire.q_int(request, "offset", 0, 0)))


async def get_version(request: web.Request) -> web.Response:
    doc = await instructions.version(workspace(request), request.match_info["sha"])
    return wire.json(doc)


async def rollback(request: web.Request) -> web.Response:
    return wire.json(
        await instructions.rollback(workspace(request), actor(request), request.match_info["sha"])
    )


async def changelog(request: web.Request) -> web.Response:
    raw = request.query.get("asset_types")
    types = [t.strip() for t in raw.split(",") if t.strip()] if raw else None
    items = await instructions.changelog(workspace(request), wire.q_limit(request, 50, 200), types)
    return wire.json(items)

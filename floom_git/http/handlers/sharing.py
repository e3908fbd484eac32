"""Worker share links: create/revoke (members), the public read-only views, import from a share."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.http.keys import MANAGER
from floom_git.schemas.sharing import ImportFromShare, ShareLink, ShareLinkCreate, ShareRevoked
from floom_git.services import sharing


def _store(request: web.Request) -> sharing.ShareStore:
    return sharing.ShareStore(settings(request).system_dir)


def _base_url(request: web.Request) -> str:
    configured = settings(request).public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


async def create_link(request: web.Request) -> web.Response:
    body = await wire.decode_optional(request, ShareLinkCreate, 4096)
    wid = request.match_info["id"]
    token, share = await sharing.create_link(_store(request), workspace(request), actor(request),
                                             wid, body.expires_in_days)
    return wire.json(ShareLink(token=token, url=f"{_base_url(request)}/s/{token}", worker_id=wid,
                               expires_at=share.expires_at), 201)


async def revoke_links(request: web.Request) -> web.Response:
    count = await sharing.revoke_links(
        _store(request), workspace(request), request.match_info["id"]
    )
    return wire.json(ShareRevoked(revoked=count > 0, count=count))


async def public_worker(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    view = await sharing.public_worker(request.app[MANAGER], _store(request), token,
                                       request.match_info["id"])
    return wire.json(view)


async def public_by_token(request: web.Request) -> web.Response:
    view = await sharing.public_worker(request.app[MANAGER], _store(request),
                                       request.match_info["token"])
    return wire.json(view)


async def import_from_share(request: web.Request) -> web.Response:
    body = await wire.decode(request, ImportFromShare, 4096)
    result = await sharing.import_from_share(
        request.app[MANAGER], _store(request), workspace(request), actor(request), body.token
    )
    return wire.json(result, 201)

"""Connection routes: remote MCP servers and catalog apps (OAuth sign-in and its callback), their
status, live test, tools, activity and secrets; the integrations catalog."""

from __future__ import annotations

from aiohttp import web

from floom_git.errors import InvalidInput
from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.http.keys import CONNECTIONS, MANAGER
from floom_git.schemas.connections import AppConnectionCreate, McpConnectionCreate
from floom_git.services.connections import Connections

MAX_PAGE = 10_000
SIGN_IN = ("state must name a sign-in still pending (not unknown, used or expired); the provider "
           "sends code, or error for a refused sign-in")


def service(request: web.Request) -> Connections:
    return request.app[CONNECTIONS]


def _redirect_uri(request: web.Request) -> str:
    base = settings(request).public_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/") + "/connections/callback"


async def list_connections(request: web.Request) -> web.Response:
    items = await service(request).list(workspace(request))
    return wire.json(items, headers={"X-Total-Count": str(len(items))})


async def get_connection(request: web.Request) -> web.Response:
    return wire.json(await service(request).one(workspace(request), request.match_info["id"]))


async def connection_status(request: web.Request) -> web.Response:
    return wire.json(await service(request).status_of(workspace(request), request.match_info["id"]))


async def create_mcp(request: web.Request) -> web.Response:
    body = await wire.decode(request, McpConnectionCreate, settings(request).max_json_bytes)
    return wire.json(await service(request).add_mcp(workspace(request), actor(request), body), 201)


async def create_app_connection(request: web.Request) -> web.Response:
    body = await wire.decode(request, AppConnectionCreate, settings(request).max_json_bytes)
    started = await service(request).connect_app(workspace(request), actor(request), body,
                                                  _redirect_uri(request))
    return wire.json(started, 201)


async def oauth_callback(request: web.Request) -> web.Response:
    """Where the provider sends the browser back (public: the `state` is the credential)."""
    q = request.query
    if not q.get("state"):
        raise InvalidInput("state: missing from the provider's redirect")
    done = await service(request).finish_sign_in(request.app[MANAGER], q["state"], q.get("code"),
                                                 q.get("error"), q.get("error_description"))
    return wire.json(done)


async def test_connection(request: web.Request) -> web.Response:
    return wire.json(await service(request).test(workspace(request), request.match_info["id"]))


async def connection_tools(request: web.Request) -> web.Response:
    items = await service(request).tools(workspace(request), request.match_info["id"])
    return wire.json(items, headers={"X-Total-Count": str(len(items))})


async def delete_connection(request: web.Request) -> web.Response:
    return wire.json(await service(request).delete(workspace(request), actor(request),
                                                   request.match_info["id"]))


async def connection_activity(request: web.Request) -> web.Response:
    limit = wire.q_limit(request, 50, 200)
    return wire.json(await service(request).activity(workspace(request), request.match_info["id"],
                                                     limit))


async def connection_secrets(request: web.Request) -> web.Response:
    return wire.json(await service(request).secret_overview(workspace(request)))


# -- integrations catalog -------------------------------------------------------------------------
async def catalog(request: web.Request) -> web.Response:
    page = await service(request).catalog_page(
        workspace(request), search=request.query.get("search") or None,
        category=request.query.get("category") or None,
        page=wire.q_int(request, "page", 1, 1, MAX_PAGE), limit=wire.q_limit(request, 50, 200))
    return wire.json(page, headers={"X-Total-Count": str(page.total)})


async def catalog_tools(request: web.Request) -> web.Response:
    app = await service(request).catalog_app(request.match_info["slug"])
    return wire.json(app.tools)

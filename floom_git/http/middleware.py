"""Request middleware: request ids, the error mapping (every failure is {"detail": ...}) and
auth + workspace selection + the role check declared on each route."""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from floom_git.errors import FloomError
from floom_git.http.errors import error_response, from_domain
from floom_git.http.keys import ACTOR, AUTH, MANAGER, WORKSPACE
from floom_git.http.routes import Handler, Route

log = logging.getLogger("floom_git.http")
ROLE_FOR = {"read": "viewer", "write": "member", "admin": "admin", "owner": "owner"}
SPECS = web.AppKey("route_specs", dict)
WORKSPACE_HEADER = "x-workeros-workspace"
WORKSPACE_COOKIE = "floom_workspace"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID") or secrets.token_hex(8)
    try:
        response = await handler(request)
    except FloomError as exc:
        response = from_domain(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            detail = "request body is too large"
        response = error_response(exc.status, detail or exc.reason)
        for key in ("Allow", "WWW-Authenticate", "Retry-After"):
            if key in exc.headers:
                response.headers[key] = exc.headers[key]
    except (ConnectionResetError, __import__("asyncio").CancelledError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request_id)
        response = error_response(500, f"Internal server error (request {request_id})")
    if not response.prepared:
        response.headers.setdefault("X-Request-ID", request_id)
    return response


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    route: Route | None = request.app[SPECS].get(request.match_info.route.handler)
    if route is None or route.perm in ("public", "git"):
        return await handler(request)
    actor = request.app[AUTH].authenticate(request.headers)
    ws_id = request.headers.get(WORKSPACE_HEADER) or request.cookies.get(WORKSPACE_COOKIE) or "default"
    ws = request.app[MANAGER].get(ws_id)
    actor = request.app[AUTH].authorize(actor, ws_id, ROLE_FOR[route.perm])
    request[ACTOR] = actor
    request[WORKSPACE] = ws
    return await handler(request)

"""Request middleware: request ids, the error mapping (every failure is {"detail": ...}) and
auth + workspace selection + the role check declared on each route; failed credentials are
rate limited per client IP and cookie-authenticated writes must be same-origin. Every response
carries `X-Content-Type-Options: nosniff`; logs never show tokens that sit in a path."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from floom_git import logs
from floom_git.errors import FloomError, Forbidden, NotFound
from floom_git.http.errors import error_response, from_domain
from floom_git.http.keys import ACTOR, AUTH, LIMITER, MANAGER, REQUEST_ID, SPECS, WORKSPACE
from floom_git.http.origin import check_cookie_write
from floom_git.http.ratelimit import auth_attempt, bucket_of, client_ip
from floom_git.http.route import Handler, Route
from floom_git.http.selection import selected_workspace
from floom_git.redaction import redact_path
from floom_git.services import freeze
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.http")
access = logging.getLogger("floom_git.access")
SAFE = ("GET", "HEAD", "OPTIONS")
ROLE_FOR = {"read": "viewer", "write": "member", "admin": "admin", "owner": "owner"}
WORKSPACE_HEADER = "x-workeros-workspace"
WORKSPACE_COOKIE = "floom_workspace"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = logs.request_id_for(request.headers.get("X-Request-ID"))
    request[REQUEST_ID] = request_id
    token = logs.REQUEST_ID.set(request_id)
    started = time.perf_counter()
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
        if exc.status == 405:
            response.headers["Allow"] = await _allowed(request) or exc.headers.get("Allow") or ""
    except HttpProcessingError as exc:
        # aiohttp's parsers raise these while a handler reads a malformed multipart body
        response = error_response(400, f"request body: malformed ({str(exc.message)[:200]})")
    except (ConnectionResetError, __import__("asyncio").CancelledError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method,
                      redact_path(request.path), request_id)
        response = error_response(500, f"Internal server error (request {request_id})")
    finally:
        logs.REQUEST_ID.reset(token)
    if not response.prepared:
        response.headers.setdefault("X-Request-ID", request_id)
    if access.isEnabledFor(logging.INFO):  # on at debug level only; else nothing is built
        path = redact_path(request.path)
        access.info("%s %s %s", request.method, path, response.status, extra={
            "method": request.method, "path": path, "status": response.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "request_id": request_id})
    return response


async def _allowed(request: web.Request) -> str | None:
    """The methods of the path that owns this URL, as OpenAPI reads paths: a literal path before
    a templated one (/workers/reload is POST only, though /workers/{id} matches it too), not the
    union of every matching resource that aiohttp lists."""
    resources = list(request.app.router.resources())
    matching = [r for r in resources if (await r.resolve(request))[1]]
    if not matching:
        return None
    owner = next((r for r in matching if isinstance(r, web.PlainResource)), matching[0])
    # routes of one path may sit in several resources (registered apart)
    return ",".join(sorted({route.method for r in resources if r.canonical == owner.canonical
                            for route in r}))


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streamed ones (SSE, git) too, carries the request id
    and `nosniff` (no browser guesses a script out of a body)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if REQUEST_ID in request:
        response.headers.setdefault("X-Request-ID", request[REQUEST_ID])


def _rate_limit(request: web.Request, route: Route, actor: Actor | None) -> None:
    """Spend one request of the route's bucket, per identity (per client IP when anonymous)."""
    bucket = bucket_of(route.method, route.response, route.extra)
    if bucket is not None and LIMITER in request.app:
        request.app[LIMITER].hit(bucket, actor.user_id if actor is not None else client_ip(request))


def _run_report(request: web.Request, route: Route, actor: Actor) -> Workspace:
    """The workspace of the run a run token reports; Forbidden for anything else."""
    if actor.auth_method != "run_token":
        raise Forbidden("Only the executor of this run, with its run token, may call this")
    if route.perm != "run":
        raise Forbidden("A run token may only report its own run and fetch its workspace over git")
    if request.match_info.get("id") != getattr(actor, "run_id", None):
        raise Forbidden("This run token belongs to another run")
    ws = request.app[MANAGER].by_uid(getattr(actor, "home_workspace", None))
    if ws is None:
        raise NotFound("Workspace not found")
    return ws


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, then authorize the route's `perm` in the workspace it acts on (the path's
    `workspace_param` or the selected workspace). perm "user" needs only a credential, and so
    does "ops" (operational views, which scope what they show to the caller themselves); perm
    "run" needs the run token of the run in the path, and a run token serves nothing else.
    Membership is checked before existence, so a non-member learns nothing from 403 vs 404."""
    route: Route | None = request.app[SPECS].get(request.match_info.route.handler)
    if route is None or route.perm in ("public", "git"):
        if route is not None:
            _rate_limit(request, route, None)
        return await handler(request)
    with auth_attempt(request):
        actor = request.app[AUTH].authenticate(request.headers, request.cookies)
    if actor.auth_method == "session":
        check_cookie_write(request, multipart=bool(route.extra.get("multipart")))
    _rate_limit(request, route, actor)
    request[ACTOR] = actor
    if route.perm == "run" or actor.auth_method == "run_token":
        request[WORKSPACE] = _run_report(request, route, actor)
        return await handler(request)
    if route.perm in ("user", "ops"):
        return await handler(request)
    param = route.extra.get("workspace_param")
    ws_id = request.match_info[param] if param else selected_workspace(request, actor)
    actor = request.app[AUTH].authorize(actor, ws_id, ROLE_FOR[route.perm])
    ws = request.app[MANAGER].get(ws_id)
    if route.perm != "read" and request.method not in SAFE and not route.extra.get("while_frozen"):
        freeze.check_writable(ws)  # 503 + Retry-After before the body is even read
    request[ACTOR] = actor
    request[WORKSPACE] = ws
    return await handler(request)

"""Smart HTTP for `git clone/fetch/push` at /git/<ws>[.git]: Basic auth, the workspace gate,
content types and streaming. The git processes belong to services.git_transport; no dumb HTTP."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from floom_git.errors import (
    FloomError,
    Forbidden,
    NotFound,
    Unauthenticated,
    UnsupportedMediaType,
)
from floom_git.http.keys import AUTH, MANAGER, TRANSPORT
from floom_git.http.ratelimit import auth_attempt
from floom_git.paths import WORKSPACE_ID_RE
from floom_git.services import freeze
from floom_git.services.actor import Actor
from floom_git.services.git_transport import (
    CHUNK,
    RECEIVE,
    SERVICES,
    UPLOAD,
    valid_protocol,
)
from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.git")
REALM = 'Basic realm="floom-git"'
NOT_FOUND = "Repository not found"  # also for a workspace the caller may not see
NO_CACHE = {
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
}


def _basic_password(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, _, password = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, or non-ASCII header bytes
        raise Unauthenticated("Invalid credentials: malformed Basic authorization "
                              "(expected base64 of user:password)", REALM) from None
    return password


def _gate(request: web.Request, service: str) -> tuple[Workspace, Actor]:
    """Who is asking, for which workspace; raises the FloomError to answer with (the error
    middleware sends it, as for every route).

    Any user name; the password goes to the authenticator (shared secret or API token). A
    workspace that does not exist or that the caller may not see is 404 alike.
    """
    auth = request.app[AUTH]
    password = _basic_password(request)
    if password is None:
        raise Unauthenticated("Authentication required: use any user name and an API token or "
                              "the shared secret as the password", REALM)
    try:
        with auth_attempt(request):
            actor = auth.authenticate_basic(password)
    except Unauthenticated as exc:
        raise Unauthenticated(exc.message, REALM) from None
    name = request.match_info["ws"]
    if "/" in name or ".." in name or name.startswith(".") or not WORKSPACE_ID_RE.match(name):
        raise NotFound(NOT_FOUND)
    try:
        actor = auth.authorize(actor, name, "viewer")
        ws = request.app[MANAGER].get(name)
    except (NotFound, Forbidden):
        raise NotFound(NOT_FOUND) from None
    # Unavailable (fenced) goes out as it is: said to those who may see the workspace
    if service == RECEIVE:
        try:
            actor = auth.authorize(actor, name, "member")
            freeze.check_writable(ws)
        except Forbidden as exc:
            raise Forbidden(f"Pushing needs write access: {exc.message}") from None
    return ws, actor


async def info_refs(request: web.Request) -> web.StreamResponse:
    service = request.query.get("service") or ""
    ws, actor = _gate(request, service)
    if service not in SERVICES:
        raise Forbidden("service: only smart HTTP is served (git-upload-pack or "
                        "git-receive-pack); dumb HTTP is not supported")
    resp = web.StreamResponse(
        headers={"Content-Type": f"application/x-{service}-advertisement", **NO_CACHE}
    )
    await resp.prepare(request)
    transport = request.app[TRANSPORT]
    protocol = valid_protocol(request.headers.get("Git-Protocol"))
    await _stream(transport.advertise(ws, actor, service, protocol, resp.write), resp)
    return resp


def _rpc(service: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        ws, actor = _gate(request, service)
        expected = f"application/x-{service}-request"
        if request.content_type != expected:
            raise UnsupportedMediaType(f"Content-Type must be {expected}")
        resp = web.StreamResponse(
            headers={"Content-Type": f"application/x-{service}-result", **NO_CACHE}
        )
        await resp.prepare(request)
        transport = request.app[TRANSPORT]
        protocol = valid_protocol(request.headers.get("Git-Protocol"))
        # aiohttp has already undone Content-Encoding: gzip; gunzipping again would corrupt it.
        body = request.content.iter_chunked(CHUNK)
        run = transport.receive_pack if service == RECEIVE else transport.upload_pack
        await _stream(run(ws, actor, protocol, body, resp.write), resp)
        return resp

    handler.__name__ = service.replace("-", "_")
    return handler


async def _stream(work: Awaitable[object], resp: web.StreamResponse) -> None:
    """Await the transport; once the response has started, a failure can only drop the
    connection (a clean end would let git take a truncated answer as complete)."""
    try:
        await work
    except (ConnectionResetError, FloomError) as exc:
        raise ConnectionResetError(f"git stream aborted: {exc}") from exc
    except TimeoutError as exc:
        log.warning("git request timed out; the git process was killed")
        raise ConnectionResetError("git request timed out") from exc
    except Exception as exc:
        log.exception("git request failed")
        raise ConnectionResetError("git request failed") from exc
    await resp.write_eof()


upload_pack = _rpc(UPLOAD)
receive_pack = _rpc(RECEIVE)



"""The workspace MCP server over streamable HTTP at /mcp and /mcp-tools/serve: one process, one
port and one auth layer with REST and git. An aiohttp handler (behind the same auth middleware,
perm read) turns the request into an ASGI scope whose state carries the caller, and hands it to
the SDK's session manager (stateless: every POST stands alone, so restarts lose nothing). The
manager's run() is held by a task of its own from the first MCP request to shutdown
(ENGINEERING-NOTES §7.6): importing the SDK takes most of a second, so start-up does not; the
published ASGI adapter froze the server on streamed responses, so it is not used."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from floom_git.config import Settings
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.http.keys import AUTH, ENGINE, MCP_LIFETIME
from floom_git.services.workspaces import Workspace

if TYPE_CHECKING:  # the SDK is imported on the first MCP request (see the module's docstring)
    from mcp.server.context import ServerRequestContext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

    from floom_git.mcp.server import Binding

STATE_KEY = "floom"
ALL_INTERFACES = ("0.0.0.0", "::", "")
_BACKGROUND: set[asyncio.Task[None]] = set()  # requests whose client went away, finishing


def _binding(ctx: ServerRequestContext[Any, Any]) -> Binding:
    request = ctx.request
    if request is None or STATE_KEY not in request.scope.get("state", {}):
        raise RuntimeError("an MCP request reached the server without a caller")
    binding: Binding = request.scope["state"][STATE_KEY]
    return binding


def security(cfg: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host (and any Origin) must name this server: loopback, the
    bound host, the public URL's host, or FLOOM_MCP_ALLOWED_HOSTS. Bound to every interface with
    none of those set, Host is not checked (credentials are still required on every request)."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1", "localhost", "[::1]", *cfg.mcp_allowed_hosts]
    if cfg.host not in ALL_INTERFACES:
        hosts.append(f"[{cfg.host}]" if ":" in cfg.host else cfg.host)
    if cfg.public_url:
        hosts.append(urlsplit(cfg.public_url).netloc)
    if cfg.host in ALL_INTERFACES and not cfg.mcp_allowed_hosts and not cfg.public_url:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    allowed = sorted({h for host in hosts for h in (host, f"{host}:*")})
    origins = sorted({f"{scheme}://{h}" for h in allowed for scheme in ("http", "https")})
    return TransportSecuritySettings(allowed_hosts=allowed, allowed_origins=origins)


class Lifetime:
    """The SDK's session manager, built on the first MCP request, and the task holding its run()
    from then until shutdown begins."""

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.task: asyncio.Task[None] | None = None
        self.stopped = False
        self._manager: StreamableHTTPSessionManager | None = None
        self._lock = asyncio.Lock()

    async def sessions(self) -> StreamableHTTPSessionManager:
        async with self._lock:
            if self.stopped:
                raise web.HTTPServiceUnavailable(text="the server is shutting down")
            if self._manager is None:
                self._manager = await self._start()
        return self._manager

    async def _start(self) -> StreamableHTTPSessionManager:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        from floom_git.mcp.server import build_server

        manager = StreamableHTTPSessionManager(build_server(_binding), stateless=True,
                                               security_settings=security(self.cfg))
        started = asyncio.Event()

        async def hold() -> None:
            async with manager.run():
                started.set()
                await asyncio.Event().wait()

        self.task = asyncio.create_task(hold(), name="mcp-session-manager")
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({self.task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiting.cancel()
            self.task.result()  # raises what stopped the manager from starting
        return manager

    async def stop(self, app: web.Application | None = None) -> None:
        self.stopped = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def lifetime(app: web.Application) -> AsyncIterator[None]:
    """Stop the session manager at cleanup (when shutdown has not already)."""
    yield
    await app[MCP_LIFETIME].stop()


def _scope(request: web.Request, binding: Binding) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method, "scheme": request.scheme, "root_path": "",
        "path": request.path, "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": None, "state": {STATE_KEY: binding},
    }


async def serve(request: web.Request) -> web.StreamResponse:
    """POST of one JSON-RPC message (or batch); the answer is JSON or an SSE stream."""
    from floom_git.mcp.server import Binding

    app = request.app
    ws, caller = workspace(request), actor(request)
    engine = app[ENGINE]

    async def attach(target: Workspace) -> object:
        return await engine.attach(target)

    binding = Binding(ws=ws, authorize=lambda perm: app[AUTH].authorize(caller, ws.id, perm),
                      settings=settings(request), attach=attach)
    done = asyncio.Event()  # the response is complete or the client has gone
    body_left = True
    response: web.StreamResponse | None = None

    async def receive() -> MutableMapping[str, Any]:
        nonlocal body_left
        if body_left:
            chunk = await request.content.readany()
            body_left = not request.content.at_eof()
            return {"type": "http.request", "body": chunk, "more_body": body_left}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal response
        if done.is_set():
            return
        try:
            if message["type"] == "http.response.start":
                response = web.StreamResponse(status=message["status"])
                for key, value in message.get("headers", []):
                    response.headers.add(key.decode("latin-1"), value.decode("latin-1"))
                if "Content-Type" not in response.headers:
                    # the SDK's plain refusals (Host, Origin, Content-Type) come untyped
                    response.content_type = "text/plain"
                    response.charset = "utf-8"
                await response.prepare(request)
            elif message["type"] == "http.response.body" and response is not None:
                if message.get("body"):
                    await response.write(message["body"])
                if not message.get("more_body", False):
                    await response.write_eof()
                    done.set()
        except (ConnectionError, RuntimeError):
            done.set()  # the client went away; let the SDK finish quietly

    # Shielded: aiohttp cancels a handler whose client disconnects, which would cut the SDK's
    # request off midway and leave its transport half closed (ENGINEERING-NOTES §7.6).
    sessions = await app[MCP_LIFETIME].sessions()
    task = asyncio.ensure_future(sessions.handle_request(_scope(request, binding), receive, send))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        done.set()
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        raise
    finally:
        done.set()
    if response is None:
        raise web.HTTPInternalServerError(text="the MCP transport sent no response")
    return response


async def serve_alias(request: web.Request) -> web.StreamResponse:
    return await serve(request)


class SseEvent(msgspec.Struct, kw_only=True):
    """One event of an SSE answer (its data is a JSON-RPC message)."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None

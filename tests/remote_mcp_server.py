"""A real remote MCP server for the tests, built with the official SDK (MCPServer, streamable
HTTP, stateful as most servers are) and served by uvicorn on a loopback port: tools with schemas,
one that errors, one that is slow, one that echoes the caller's credential (as careless servers
do in errors). It can demand a bearer token, and records the Authorization header of every
request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import pytest
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.responses import PlainTextResponse


def build() -> MCPServer:
    server = MCPServer("fixture-server", version="9.9.9")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str, upper: bool = False) -> str:
        """Return the text, upper-cased on request."""
        return text.upper() if upper else text

    @server.tool()
    def fail(message: str) -> str:
        """Always fails with the message."""
        raise ToolError(message)

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answer after `seconds`."""
        await anyio.sleep(seconds)
        return "done"

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The Authorization header this call carried."""
        return (ctx.headers or {}).get("authorization", "")

    return server


@dataclass
class RemoteServer:
    port: int = 0
    tokens: set[str] = field(default_factory=set)  # empty: no auth demanded
    seen_auth: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def asgi(self, inner):  # type: ignore[no-untyped-def]
        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                auth = dict(scope["headers"]).get(b"authorization", b"").decode()
                self.seen_auth.append(auth)
                if self.tokens and auth not in {f"Bearer {t}" for t in self.tokens}:
                    await PlainTextResponse("unauthorized", 401)(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return app


@pytest.fixture
async def remote_server() -> AsyncIterator[RemoteServer]:
    remote = RemoteServer()
    config = uvicorn.Config(remote.asgi(build().streamable_http_app()), host="127.0.0.1", port=0,
                            log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest owns them
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await anyio.sleep(0.01)
    remote.port = server.servers[0].sockets[0].getsockname()[1]
    yield remote
    server.should_exit = True
    await task

"""The client side of connections: a remote MCP server reached with the official SDK over
streamable HTTP through the guarded egress client. `probe` is a live initialize + tools/list with
its latency; `RemoteSession` keeps one session open in a task of its own (the SDK's contexts must
be left in the task that entered them) so an agent run can call tools from anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK and httpx2 take most of a second to import: done when a session opens
    import httpx2
    import mcp_types as types
    from mcp.client.session import ClientSession

CLOSE_GRACE = 5.0  # seconds a closing session may take to say goodbye before it is cut


class RemoteError(Exception):
    """The server could not be reached, refused, broke the protocol or (`timed_out`) did not
    answer in time; `message` says which."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


@dataclass(frozen=True)
class Endpoint:
    url: str
    headers: dict[str, str]
    allow_private: bool
    timeout: float


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _timed_out(exc: BaseException) -> bool:
    import httpx2  # imported already: only a session's errors come here

    return isinstance(exc, TimeoutError | httpx2.TimeoutException)


def describe(exc: BaseException, statuses: list[int] | None = None) -> str:
    """One line for a person: the HTTP status the server answered with, or the innermost error."""
    leaf = _leaf(exc)
    if statuses:
        hint = {401: " (check the connection's secret)", 403: " (the credential lacks access)",
                404: " (check the URL)"}.get(statuses[-1], "")
        return f"the server answered HTTP {statuses[-1]}{hint}"
    if _timed_out(leaf):
        return "the server did not answer in time"
    text = getattr(leaf, "message", None) or str(leaf) or type(leaf).__name__
    return f"{type(leaf).__name__}: {text}"[:500]


@contextlib.asynccontextmanager
async def open_session(ep: Endpoint) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
    """An initialized session; RemoteError when connecting or initializing fails. The SDK's
    task group cancels this task when its connection fails; leaving the `async with` blocks
    turns that into the error, so they are left before it is looked at."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from floom_git.services import egress_client

    statuses: list[int] = []

    async def on_response(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            statuses.append(response.status_code)

    opened = False
    try:
        async with (
            egress_client.http_client(
                ep.allow_private,
                headers=ep.headers,
                timeout=httpx2.Timeout(ep.timeout),
                event_hooks={"response": [on_response]},
            ) as http,
            streamable_http_client(ep.url, http_client=http) as (read, write),
            ClientSession(read, write, read_timeout_seconds=ep.timeout) as session,
        ):
            init = await session.initialize()
            opened = True
            yield session, init
    except Exception as exc:
        if opened:
            raise
        raise RemoteError(describe(exc, statuses)) from None


async def list_all_tools(session: ClientSession) -> list[types.Tool]:
    import mcp_types as types

    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a server that pages forever is cut off
        page = await session.list_tools(
            params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
        )
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


@dataclass(frozen=True)
class Probe:
    ok: bool
    latency_ms: int
    server: dict[str, Any] | None
    tools: list[types.Tool]
    error: str | None


async def probe(ep: Endpoint) -> Probe:
    """A live initialize + tools/list; never raises for the server's failures."""
    began = time.monotonic()
    server = None
    try:
        async with open_session(ep) as (session, init):
            server = {"name": init.server_info.name, "version": init.server_info.version,
                      "protocol_version": init.protocol_version}
            tools = await list_all_tools(session)
    except RemoteError as exc:
        return Probe(False, _ms(began), server, [], exc.message)
    except Exception as exc:  # noqa: BLE001 - a failure after initialize (e.g. tools/list)
        return Probe(False, _ms(began), server, [], describe(exc))
    return Probe(True, _ms(began), server, tools, None)


class RemoteSession:
    """One session held open by its own task until `close()`."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.session: ClientSession | None = None
        self.tools: list[types.Tool] = []
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and list the tools; RemoteError when that fails."""
        self._task = asyncio.create_task(self._hold())
        await self._ready

    async def _hold(self) -> None:
        try:
            async with open_session(self.ep) as (session, _):
                self.tools = await list_all_tools(session)
                self.session = session
                self._ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001
            if not self._ready.done():
                self._ready.set_exception(
                    exc if isinstance(exc, RemoteError) else RemoteError(describe(exc))
                )
        finally:
            self.session = None

    async def call(
        self, name: str, arguments: dict[str, Any], timeout: float
    ) -> types.CallToolResult:
        if self.session is None:
            raise RemoteError("the session with the server has ended")
        try:
            return await self.session.call_tool(name, arguments, read_timeout_seconds=timeout)
        except Exception as exc:  # noqa: BLE001
            import mcp_types as types
            from mcp.shared.exceptions import MCPError

            leaf = _leaf(exc)
            timed_out = _timed_out(leaf) or (
                isinstance(leaf, MCPError) and leaf.error.code == types.REQUEST_TIMEOUT)
            raise RemoteError(describe(exc), timed_out) from None

    async def close(self) -> None:
        """End the session; a server slow to hear the goodbye is left after CLOSE_GRACE."""
        self._stop.set()
        if self._task is not None:
            if not self._ready.done():
                self._task.cancel()  # still connecting: nothing to say goodbye to
            await asyncio.wait({self._task}, timeout=CLOSE_GRACE)
            if not self._task.done():
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)

"""A local stand-in for LLM providers on a loopback port: OpenAI chat completions
(`POST /v1/chat/completions`) and Anthropic messages (`POST /v1/messages`), streamed over SSE in
each protocol's real wire format, answering from a script of replies (text, tool calls, parallel
tool calls, malformed arguments, HTTP errors with Retry-After, stalled or dropped streams).

Like the real services it checks the key, the request shape and the conversation (every tool
call answered, results only for calls that were made) and answers 400/401 otherwise; every
request is kept in `requests` for the test to inspect."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import llm_wire as wire

KEY = "test-key"


@dataclass
class Reply:
    """One scripted answer. `calls` are (tool name, raw argument text); `status` answers an HTTP
    error instead; `stall_after`/`drop_after` stop sending after that many text pieces and then
    hang until the server closes, or cut the connection."""

    text: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    status: int | None = None
    retry_after: str | None = None
    stall_after: int | None = None
    drop_after: int | None = None
    usage: tuple[int, int] = (12, 7)
    piece: int = 5  # characters per streamed text or argument piece


def text(content: str, **kw: Any) -> Reply:
    return Reply(text=content, **kw)


def call(name: str, args: dict[str, Any] | str, **kw: Any) -> Reply:
    return calls((name, args), **kw)


def calls(*items: tuple[str, dict[str, Any] | str], text: str = "", **kw: Any) -> Reply:
    raw = [(n, a if isinstance(a, str) else json.dumps(a)) for n, a in items]
    return Reply(text=text, calls=raw, **kw)


def error(status: int, retry_after: str | None = None) -> Reply:
    return Reply(status=status, retry_after=retry_after)


@dataclass
class Seen:
    protocol: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLLM:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._ids = 0

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def url(self, protocol: str) -> str:
        """The `base_url` an SDK client of `protocol` (openai | anthropic) is given."""
        root = f"http://127.0.0.1:{self.port}"
        return f"{root}/v1" if protocol == "openai" else root

    async def start(self) -> FakeLLM:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        self._release.set()  # stalled streams end
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers ---------------------------------------------------------------------------
    async def _openai(self, request: web.Request) -> web.StreamResponse:
        if _bearer(request) != KEY:
            return wire.openai_error(401, "Incorrect API key provided")
        return await self._serve(request, "openai")

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        # Anthropic takes the key as x-api-key or (newer SDKs) as a bearer token.
        if KEY not in (request.headers.get("x-api-key"), _bearer(request)):
            return wire.anthropic_error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return wire.anthropic_error(400, "anthropic-version header is required")
        return await self._serve(request, "anthropic")

    async def _serve(self, request: web.Request, protocol: str) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(protocol, dict(request.headers), body))
        check, errors = ((wire.check_openai, wire.openai_error) if protocol == "openai"
                         else (wire.check_anthropic, wire.anthropic_error))
        problem = check(body)
        if problem:
            return errors(400, problem)
        return await self._answer(request, protocol, body)

    async def _answer(self, request: web.Request, protocol: str,
                      body: dict[str, Any]) -> web.StreamResponse:
        errors = wire.openai_error if protocol == "openai" else wire.anthropic_error
        if not self.replies:
            return errors(500, "fake LLM: the test's script has no reply left")
        reply = self.replies.popleft()
        if reply.status is not None:
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            return errors(reply.status, f"scripted {reply.status}", headers)
        self._ids += 1
        frames = (wire.openai_frames(reply, body, self._ids) if protocol == "openai"
                  else wire.anthropic_frames(reply, body, self._ids))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            for kind, frame in frames:
                if kind == "stall":
                    await self._release.wait()
                    return resp
                if kind == "drop":
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await resp.write(frame)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away (a stall the client gave up on)
        return resp


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None

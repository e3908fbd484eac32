"""Server-sent event streams (aiohttp-sse): numbered events, resume after `Last-Event-ID` (or
`?last_event_id=`), keepalive comments, and an end when the source says it is done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web
from aiohttp_sse import sse_response

from floom_git.errors import InvalidInput

IDLE_ROUND = 0.05  # seconds: the least a round of a stream takes when nothing changed


@dataclass(frozen=True)
class Frame:
    id: int | None
    data: Any
    event: str | None = None


# fetch(after) -> (frames newer than `after`, done, position): `position` is how far the source
# has been read (its own event counter), which may be past the last frame sent when a stream
# shows only some events. wait(position, timeout) returns once the source moved past `position`
# or after `timeout`, and must block until then: a stream never goes round without waiting.
Fetch = Callable[[int], Awaitable[tuple[list[Frame], bool, int]]]
Wait = Callable[[int, float], Awaitable[None]]


def last_event_id(request: web.Request) -> int:
    """The id a reconnecting client saw last: Last-Event-ID header, else ?last_event_id=, else 0."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(
            f"last_event_id: expected an integer event id, got '{raw[:40]}'"
        ) from None
    if value < 0:
        raise InvalidInput("last_event_id: must be >= 0")
    return value


async def stream(request: web.Request, fetch: Fetch, wait: Wait,
                 keepalive: float) -> web.StreamResponse:
    """Send frames after the client's last id until `fetch` reports done; ids never repeat."""
    after = last_event_id(request)
    frames, done, position = await fetch(after)  # before the response starts: errors stay JSON
    async with sse_response(request, ping_interval=keepalive) as resp:
        while True:
            for frame in frames:
                if frame.id is not None and frame.id <= after:
                    continue
                data = (
                    frame.data
                    if isinstance(frame.data, str)
                    else msgspec.json.encode(frame.data).decode()
                )
                await resp.send(data, id=str(frame.id) if frame.id is not None else None,
                                event=frame.event)
                if frame.id is not None:
                    after = frame.id
            if done or not resp.is_connected():
                break
            # Wait on the source's position, not on the last id sent: events this stream does
            # not show (a log stream of a queued run) must not make it go round at once.
            await wait(position, keepalive)
            before = position
            frames, done, position = await fetch(after)
            if not frames and position == before:
                # Woken with nothing new (a timeout, or a record rewritten in place). A wait
                # that cannot block would make this a busy loop: never faster than this.
                await asyncio.sleep(IDLE_ROUND)
    return resp

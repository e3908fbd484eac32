"""Per-workspace event bus: a numbered ring buffer that SSE readers replay from and wait on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

RING = 1024


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    data: dict[str, Any]
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self, size: int = RING) -> None:
        self._ring: collections.deque[Event] = collections.deque(maxlen=size)
        self._seq = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, type_: str, **data: Any) -> Event:
        self._seq += 1
        event = Event(self._seq, type_, data)
        self._ring.append(event)
        first = next(iter(self._waiters), None)  # (an emit off the loop races its removals)
        if first is not None:  # followers wait on the loop; an emit off it wakes them from there
            loop = first.get_loop()
            if asyncio._get_running_loop() is loop:
                self._wake()
            else:
                loop.call_soon_threadsafe(self._wake)
        return event

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def since(self, seq: int) -> tuple[list[Event], bool]:
        """Events after `seq`, and whether the ring still reached back that far. The ring holds
        consecutive numbers, so the newer events are its last `last_seq - seq`: a follower
        woken per event reads one, not the whole ring."""
        ring = self._ring
        newer = self._seq - seq
        if newer <= 0:
            events = []
        elif newer >= len(ring):
            events = list(ring)
        else:
            events = list(itertools.islice(reversed(ring), newer))
            events.reverse()
        complete = not ring or ring[0].seq <= seq + 1 or seq >= self._seq
        return events, complete

    async def wait(self, seq: int, timeout: float) -> None:
        """Return when an event newer than `seq` exists, or after `timeout` seconds."""
        if self._seq > seq:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):  # gone already if an emit woke it
                self._waiters.remove(waiter)


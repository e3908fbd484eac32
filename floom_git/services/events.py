"""Per-workspace event bus: a numbered ring buffer that SSE readers replay from and wait on."""

from __future__ import annotations

import asyncio
import collections
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
        self._cond: asyncio.Condition | None = None

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, type_: str, **data: Any) -> Event:
        self._seq += 1
        event = Event(self._seq, type_, data)
        self._ring.append(event)
        if self._cond is not None:
            cond = self._cond

            async def _notify() -> None:
                async with cond:
                    cond.notify_all()

            try:
                asyncio.get_running_loop().create_task(_notify())
            except RuntimeError:
                pass
        return event

    def since(self, seq: int) -> tuple[list[Event], bool]:
        """Events after `seq`, and whether the ring still reached back that far."""
        events = [e for e in self._ring if e.seq > seq]
        complete = not self._ring or self._ring[0].seq <= seq + 1 or seq >= self._seq
        return events, complete

    async def wait(self, seq: int, timeout: float) -> None:
        """Return when an event newer than `seq` exists, or after `timeout` seconds."""
        if self._cond is None:
            self._cond = asyncio.Condition()
        if self._seq > seq:
            return
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: self._seq > seq), timeout)
            except TimeoutError:
                pass

"""The per-workspace event bus: replay from a sequence number, and waiting for the next event."""

from __future__ import annotations

import asyncio
import threading

from floom_git.services.events import EventBus


def test_since_returns_exactly_the_newer_events_in_order() -> None:
    bus = EventBus(size=8)
    for i in range(5):
        bus.emit("e", i=i)
    assert [e.seq for e in bus.since(0)[0]] == [1, 2, 3, 4, 5]
    assert [e.seq for e in bus.since(3)[0]] == [4, 5]
    assert bus.since(5) == ([], True)
    assert bus.since(9) == ([], True)  # a number from the future: nothing, not everything


def test_since_says_when_the_ring_no_longer_reaches_back() -> None:
    bus = EventBus(size=4)
    for i in range(10):
        bus.emit("e", i=i)
    events, complete = bus.since(2)
    assert [e.seq for e in events] == [7, 8, 9, 10] and not complete
    events, complete = bus.since(6)
    assert [e.seq for e in events] == [7, 8, 9, 10] and complete
    events, complete = bus.since(8)
    assert [e.seq for e in events] == [9, 10] and complete


def test_wait_returns_at_the_next_event_and_after_the_timeout() -> None:
    async def main() -> None:
        bus = EventBus()
        bus.emit("first")
        await asyncio.wait_for(bus.wait(0, 5), 1)  # already newer: no wait at all
        waiting = [asyncio.create_task(bus.wait(1, 30)) for _ in range(3)]
        while len(bus._waiters) < 3:
            await asyncio.sleep(0)
        assert not any(t.done() for t in waiting)
        bus.emit("second")
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        await bus.wait(2, 0.01)  # nothing newer: returns when the timeout passes
        assert bus._waiters == []  # a timed-out waiter leaves nothing behind

    asyncio.run(main())


def test_an_event_emitted_off_the_loop_wakes_a_waiter() -> None:
    async def main() -> None:
        bus = EventBus()
        task = asyncio.create_task(bus.wait(0, 30))
        while not bus._waiters:  # the waiter is registered before the thread emits
            await asyncio.sleep(0)
        thread = threading.Thread(target=bus.emit, args=("from-a-thread",))
        thread.start()
        await asyncio.wait_for(task, 5)
        thread.join()
        assert [e.type for e in bus.since(0)[0]] == ["from-a-thread"]

    asyncio.run(main())

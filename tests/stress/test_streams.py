"""Every event stream waits on an event whatever the run's state: opening all three live
streams of a queued run (more runs triggered than FLOOM_MAX_CONCURRENT_RUNS) leaves the server
answering other requests, and SIGTERM still stops it. The server is a real process, so a
stream that spins shows as a server that stops answering, not as a hung test."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp

from benchmarks.stress_server import HEADERS, ServerProcess, server_env
from tests.http.test_runs import yml

SLEEPY = "import time\ntime.sleep(30)\n"
GENEROUS = 5.0  # "answers at all", not a latency figure


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw) -> dict:
    async with session.request(method, url, **kw) as resp:
        body = await resp.json()
        assert resp.status < 300, body
        return body


async def _read_forever(session: aiohttp.ClientSession, url: str, opened: asyncio.Event) -> None:
    async with session.get(url) as resp:
        assert resp.status == 200
        opened.set()
        async for _line in resp.content:
            pass


async def test_streams_of_queued_run_leave_server_answering(tmp_path: Path):
    server = ServerProcess(tmp_path / "data", tmp_path / "server.log", env=server_env(
        {"FLOOM_MAX_CONCURRENT_RUNS": "1", "FLOOM_WATCH": "false", "FLOOM_SCHEDULER": "false"}))
    server.start()
    readers: list[asyncio.Task] = []
    try:
        await server.wait_ready()
        base = server.base + "/api"
        async with aiohttp.ClientSession(headers=HEADERS) as s:
            await _json(s, "POST", f"{base}/workers",
                        json={"worker_yml": yml("sleepy"), "run_py": SLEEPY})
            running = (await _json(s, "POST", f"{base}/workers/sleepy/runs", json={}))["run_id"]
            queued = (await _json(s, "POST", f"{base}/workers/sleepy/runs", json={}))["run_id"]
            assert (await _json(s, "GET", f"{base}/runs/{queued}"))["status"] == "queued"
            for suffix in ("events", "logs/stream", "stream"):
                opened = asyncio.Event()
                readers.append(asyncio.create_task(
                    _read_forever(s, f"{base}/runs/{queued}/{suffix}", opened)))
                await asyncio.wait_for(opened.wait(), GENEROUS)
            for _ in range(5):
                async with asyncio.timeout(GENEROUS):
                    async with s.get(server.base + "/healthz") as resp:
                        assert resp.status == 200
                await asyncio.sleep(0.1)
            assert (await _json(s, "GET", f"{base}/runs/{running}"))["status"] == "running"
            for rid in (queued, running):
                await _json(s, "POST", f"{base}/runs/{rid}/cancel")
            started = time.monotonic()
            for task in readers:  # the streams end once their run has ended
                await asyncio.wait_for(task, GENEROUS * 4)
            assert time.monotonic() - started < GENEROUS * 4
    finally:
        for task in readers:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*readers, return_exceptions=True)
        code = server.stop(timeout=GENEROUS * 4)  # SIGTERM; SIGKILL only if it did not end
    assert code is not None, f"SIGTERM did not stop the server:\n{server.log_tail()}"

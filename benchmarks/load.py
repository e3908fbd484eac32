"""`scripts/load [--duration S | --quick]`: bounded mixed traffic against the real server (a
subprocess on loopback) with aiohttp clients — reads, writes, runs and SSE subscribers — then
requests/s, latency percentiles, errors, and the server's memory, open fds and asyncio tasks at
start and end (after the traffic has drained)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.stress_server import HEADERS, ServerProcess, open_fds, rss_bytes, server_env

READS = ("/api/workers", "/api/workers/word-count", "/api/workers/word-count/versions",
         "/api/contexts", "/api/contexts/company", "/api/contexts/company/files/about.md",
         "/api/workspace", "/api/workspace/changelog?limit=20", "/api/runs?limit=20",
         "/api/workspace/issues", "/api/healthz")
HOT_FILES = 20  # writers rotate over this many context files: the repository stays small
SETTLE_DEADLINE = 45.0  # SSE handlers of gone clients end at their next keepalive (15 s)
MB = 1024 * 1024


@dataclass(frozen=True)
class Options:
    duration: float = 60.0
    readers: int = 8
    writers: int = 2
    runners: int = 1
    sse: int = 4  # subscribers following runs' event streams
    warmup: float = 2.0
    seed: int | None = None
    work_dir: Path | None = None
    quiet: bool = False


@dataclass
class Snapshot:
    rss: int
    fds: int
    tasks: int


@dataclass
class LoadReport:
    duration: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    sse_streams: int = 0
    sse_closed: int = 0  # streams the server ended because the run ended
    sse_events: int = 0
    runs: Counter = field(default_factory=Counter)
    start: Snapshot | None = None
    end: Snapshot | None = None

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def lines(self) -> list[str]:
        every = sorted(x for v in self.latencies.values() for x in v) or [0.0]
        rate = self.requests / max(self.duration, 1e-9)
        head = f"requests: {self.requests} in {self.duration:.1f} s = {rate:.1f}/s; "
        out = [head + f"errors: {len(self.errors)}", f"latency all: {_pcts(every)}"]
        out += [f"latency {kind}: {_pcts(sorted(v))} ({len(v)} requests)"
                for kind, v in sorted(self.latencies.items())]
        out.append(f"SSE: {self.sse_streams} streams, {self.sse_closed} ended by the server at "
                   f"the run's end, {self.sse_events} events")
        out.append("runs: " + ", ".join(f"{k} {v}" for k, v in sorted(self.runs.items())))
        if self.start and self.end:
            out.append(f"server RSS: {self.start.rss / MB:.1f} MB at start, "
                       f"{self.end.rss / MB:.1f} MB at end")
            out.append(f"server open fds: {self.start.fds} at start, {self.end.fds} at end")
            out.append(
                f"server asyncio tasks: {self.start.tasks} at start, {self.end.tasks} at end"
            )
        out += [f"  error: {e}" for e in self.errors[:20]]
        return out


def _pcts(samples: list[float]) -> str:
    if len(samples) < 2:
        p50 = p99 = samples[0] if samples else 0.0
    else:
        p50 = statistics.median(samples)
        p99 = statistics.quantiles(samples, n=100, method="inclusive")[98]
    return f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {samples[-1] * 1000:.1f} ms"


class Traffic:
    """The client side: every task records its latencies and errors in `report`."""

    def __init__(self, server: ServerProcess, report: LoadReport, rng: random.Random) -> None:
        self.server = server
        self.report = report
        self.rng = rng
        self.recording = False
        self.run_ids: asyncio.Queue[str] = asyncio.Queue()
        self.counter = itertools.count()

    def _record(self, kind: str, seconds: float) -> None:
        if self.recording:
            self.report.latencies[kind].append(seconds)

    async def call(self, session: aiohttp.ClientSession, kind: str, method: str, path: str,
                   **kw: object) -> object:
        started = time.perf_counter()
        try:
            async with session.request(method, self.server.base + path, **kw) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.report.errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        self._record(kind, time.perf_counter() - started)
        if status >= 400:
            self.report.errors.append(f"{method} {path} -> {status} {body[:200]!r}")
            return None
        return body

    async def reader(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.call(session, "read", "GET", self.rng.choice(READS))

    async def writer(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            n = next(self.counter)
            if n % 10 == 0:
                await self.call(session, "write", "POST", "/api/workspace/issues",
                                json={"title": f"load {n}", "body": "from scripts/load"})
                continue
            await self.call(session, "write", "PUT",
                            f"/api/contexts/company/files/load/f{n % HOT_FILES}.md",
                            data=f"# load {n}\n", headers={"content-type": "text/markdown"})

    async def runner(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = await self.call(session, "run", "POST", "/api/workers/word-count/runs",
                                   json={"inputs": {"text": "the quick brown fox"}})
            if body is not None:
                self.report.runs["triggered"] += 1
                self.run_ids.put_nowait(json.loads(body)["run_id"])
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass

    async def subscriber(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Follow one run's event stream to its `close` event, then the next run's."""
        while not stop.is_set():
            try:
                rid = await asyncio.wait_for(self.run_ids.get(), 0.5)
            except TimeoutError:
                continue
            self.report.sse_streams += 1
            try:
                async with session.get(f"{self.server.base}/api/runs/{rid}/events") as resp:
                    if resp.status != 200:
                        self.report.errors.append(f"SSE /runs/{rid}/events -> {resp.status}")
                        continue
                    async for line in resp.content:
                        if line.startswith(b"data:"):
                            self.report.sse_events += 1
                            if b'"type":"close"' in line:
                                self.report.sse_closed += 1
                                self.report.runs[_status(line)] += 1
                                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.report.errors.append(f"SSE /runs/{rid}/events: {type(exc).__name__}: {exc}")


def _status(line: bytes) -> str:
    return str(json.loads(line.split(b":", 1)[1]).get("status"))


async def gauges(server: ServerProcess, session: aiohttp.ClientSession) -> dict[str, float]:
    """The unlabelled gauges of /metrics (tasks, in-flight requests, active runs, queue)."""
    async with session.get(server.base + "/metrics") as resp:
        text = await resp.text()
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if not s.labels}


async def settled(server: ServerProcess, session: aiohttp.ClientSession,
                  start: Snapshot | None = None, fd_slack: int = 0,
                  task_slack: int = 0) -> Snapshot:
    """The server's state once traffic has drained (no run executing or queued, no request but
    this one); with `start`, also wait until fds and tasks are back within the slack of it.
    Polls up to a generous deadline, then the last reading stands."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while True:
        g = await gauges(server, session)
        snap = Snapshot(rss=rss_bytes(server.pid), fds=open_fds(server.pid),
                        tasks=int(g.get("floom_asyncio_tasks", 0)))
        idle = (g.get("floom_runs_active", 0) == 0 and g.get("floom_run_queue_depth", 0) == 0
                and g.get("floom_http_requests_in_flight", 0) <= 1)
        back = start is None or (snap.fds <= start.fds + fd_slack
                                 and snap.tasks <= start.tasks + task_slack)
        if (idle and back) or time.monotonic() > deadline:
            return snap
        await asyncio.sleep(0.25)


async def drive(opts: Options, server: ServerProcess, report: LoadReport, seconds: float,
                traffic: Traffic) -> None:
    stop = asyncio.Event()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=HEADERS, connector=conn,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        tasks = [traffic.reader(session, stop) for _ in range(opts.readers)]
        tasks += [traffic.writer(session, stop) for _ in range(opts.writers)]
        tasks += [traffic.runner(session, stop) for _ in range(opts.runners)]
        tasks += [traffic.subscriber(session, stop) for _ in range(opts.sse)]
        running = [asyncio.create_task(t) for t in tasks]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*running)


async def run(opts: Options, fd_slack: int = 8, task_slack: int = 4) -> LoadReport:
    rng = random.Random(opts.seed)
    root = opts.work_dir or Path(tempfile.mkdtemp(prefix="floom-load-"))
    root.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(root / "data", root / "server.log", env=server_env())
    report = LoadReport()
    try:
        server.start()
        await server.wait_ready()
        traffic = Traffic(server, report, rng)
        # Warm-up: lazy pools, caches and the first git processes are not growth.
        await drive(opts, server, report, opts.warmup, traffic)
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            report.start = await settled(server, session)
        report.runs.clear()  # count only what the measured period did
        report.sse_streams = report.sse_closed = report.sse_events = 0
        traffic.recording = True
        began = time.perf_counter()
        await drive(opts, server, report, opts.duration, traffic)
        report.duration = time.perf_counter() - began
        traffic.recording = False
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            report.end = await settled(server, session, report.start, fd_slack, task_slack)
    finally:
        server.stop()
        if opts.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/load", description=__doc__)
    parser.add_argument(
        "--duration", type=float, default=Options.duration, help="seconds of traffic"
    )
    parser.add_argument("--quick", action="store_true", help="8 seconds of traffic")
    parser.add_argument("--readers", type=int, default=Options.readers)
    parser.add_argument("--writers", type=int, default=Options.writers)
    parser.add_argument("--runners", type=int, default=Options.runners)
    parser.add_argument("--sse", type=int, default=Options.sse, help="SSE subscribers")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep data and server log here")
    args = parser.parse_args(argv)
    opts = Options(duration=8.0 if args.quick else args.duration, readers=args.readers,
                   writers=args.writers, runners=args.runners, sse=args.sse, seed=args.seed,
                   work_dir=args.work_dir)
    print(f"floom-git load: {opts.duration:.0f} s, {opts.readers} readers, {opts.writers} "
          f"writers, {opts.runners} run triggers, {opts.sse} SSE subscribers", file=sys.stderr)
    report = asyncio.run(run(opts))
    print("\n".join(report.lines()))
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())

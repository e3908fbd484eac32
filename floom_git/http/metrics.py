"""GET /metrics: Prometheus text from one CollectorRegistry per app — requests and latency by
route template, commits, pushes, runs by status, run queue depth, watcher lag, asyncio tasks and
the process (memory, open fds). Samples labelled with a workspace are shown to that workspace's
admins; the rest (server-wide) to server admins only. create_app wires it; `middleware` times
every request."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from floom_git.http.keys import ACTOR, ENGINE, MANAGER, METRICS, SPECS, WATCHER
from floom_git.http.selection import OpsScope, ops_scope
from floom_git.schemas.run import STATUSES
from floom_git.services.moves import Moved
from floom_git.services.workspaces import Workspace

# Route latencies span ~1 ms reads to multi-second pushes and clones.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"  # no route: never label by raw path (unbounded label values)
EVENT_WAIT = 30.0


class Metrics:
    """The registry of one app and the instruments the server updates as it works."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("floom_http_requests", "HTTP requests answered, by route template",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("floom_http_request_duration_seconds",
                                 "Time to answer a request (a stream: until it ends)",
                                 ["method", "route"], buckets=BUCKETS, registry=r)
        self.in_flight = Gauge("floom_http_requests_in_flight", "Requests being answered",
                               registry=r)
        self.commits = Counter("floom_commits", "Commits the server made through the writer",
                               ["workspace", "ref"], registry=r)
        self.pushes = Counter("floom_pushes", "git pushes that moved at least one ref",
                              ["workspace"], registry=r)
        self.events = Counter("floom_events", "Workspace events emitted, by type",
                              ["workspace", "type"], registry=r)
        ProcessCollector(registry=r)
        r.register(_StateCollector(app))
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- workspaces ------------------------------------------------------------------------------
    def opened(self, ws: Workspace) -> None:
        """Count the workspace's commits and pushes (its move pipeline) and events (its bus)."""

        def on_moved(move: Moved) -> None:
            if move.source == "push":
                self.pushes.labels(ws.id).inc()
            else:
                self.commits.labels(ws.id, move.ref.removeprefix("refs/heads/")).inc()

        ws.moves.subscribers.append(on_moved)
        loop = self._loop
        if loop is not None and not loop.is_closed():  # opened from worker threads too
            loop.call_soon_threadsafe(self._follow, ws)

    def closed(self, ws: Workspace) -> None:
        """Stop following a deleted workspace and forget its series: a workspace created later
        under the same name starts counting from zero."""
        task = self._followers.pop(ws.id, None)
        if task is not None:
            task.cancel()
        for counter, names in ((self.commits, ("workspace", "ref")), (self.pushes, ("workspace",)),
                               (self.events, ("workspace", "type"))):
            series = {tuple(s.labels[n] for n in names) for family in counter.collect()
                      for s in family.samples if s.labels.get("workspace") == ws.id}
            for labels in series:
                counter.remove(*labels)

    def _follow(self, ws: Workspace) -> None:
        old = self._followers.get(ws.id)
        if old is None or old.done():
            self._followers[ws.id] = asyncio.get_running_loop().create_task(
                self._count_events(ws), name=f"metrics-events:{ws.id}")

    async def _count_events(self, ws: Workspace) -> None:
        seen = ws.events.last_seq
        while True:
            await ws.events.wait(seen, EVENT_WAIT)
            events, _complete = ws.events.since(seen)
            for event in events:
                self.events.labels(ws.id, event.type).inc()
                seen = event.seq

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for ws in self.app[MANAGER].all():
            self._follow(ws)

    async def stop(self) -> None:
        self._loop = None
        tasks = list(self._followers.values())
        self._followers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- requests --------------------------------------------------------------------------------
    def route_of(self, request: web.Request) -> str:
        match = request.match_info
        if match.http_exception is not None:
            return UNMATCHED
        spec = request.app[SPECS].get(match.route.handler) if SPECS in request.app else None
        if spec is not None:
            return spec.path
        resource = match.route.resource
        return resource.canonical if resource is not None else UNMATCHED



class _StateCollector(Collector):
    """Gauges read at scrape time from the live server state (nothing to keep in sync)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily("floom_asyncio_tasks", "asyncio tasks not yet done")
        with contextlib.suppress(RuntimeError):  # scraped outside the loop (e.g. at import)
            tasks.add_metric([], len(asyncio.all_tasks()))
        yield tasks
        if MANAGER not in self.app:
            return
        spaces = self.app[MANAGER].all()
        yield from self._runs(spaces)
        yield from self._watcher(spaces)
        count = GaugeMetricFamily("floom_workspaces", "Open workspaces")
        count.add_metric([], len(spaces))
        yield count

    def _runs(self, spaces: list[Workspace]) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily("floom_runs", "Runs by status", labels=["workspace", "status"])
        for ws in spaces:
            store = ws.runs
            if store.loaded and not store.complete:
                continue  # a cold start is still reading its records: no series, not wrong ones
            counts = dict.fromkeys(STATUSES, 0)
            for entry in list(store.index.values()):
                counts[entry.status] = counts.get(entry.status, 0) + 1
            for status, n in counts.items():
                runs.add_metric([ws.id, status], n)
        yield runs
        engine = self.app.get(ENGINE)
        if engine is not None:
            depth = GaugeMetricFamily("floom_run_queue_depth", "Runs waiting for a slot")
            depth.add_metric([], len(getattr(engine, "_queue", ())))
            yield depth
            active = GaugeMetricFamily("floom_runs_active", "Runs executing now")
            active.add_metric([], engine.active)
            yield active

    def _watcher(self, spaces: list[Workspace]) -> Iterator[GaugeMetricFamily]:
        watcher = self.app.get(WATCHER)
        if watcher is None:
            return
        pending = GaugeMetricFamily("floom_watcher_pending_paths",
                                    "On-disk edits seen but not yet committed",
                                    labels=["workspace"])
        lag = GaugeMetricFamily(
            "floom_watcher_lag_seconds",
            "Age of the newest uncommitted on-disk edit (0 when none is waiting)",
            labels=["workspace"])
        now = time.monotonic()
        for ws in spaces:
            watch = watcher.get(ws.id)
            if watch is None:
                continue
            # asyncio's loop clock is time.monotonic() on Linux: _last is comparable.
            paths: set[str] = getattr(watch, "_pending", set())
            last = getattr(watch, "_last", 0.0)
            pending.add_metric([ws.id], len(paths))
            lag.add_metric([ws.id], max(0.0, now - last) if paths else 0.0)
        yield pending
        yield lag


@web.middleware
async def middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Count and time every request by route template (outermost: sees the final status)."""
    metrics = request.app.get(METRICS)
    if metrics is None:
        return await handler(request)
    route = metrics.route_of(request)
    started = time.perf_counter()
    status = "aborted"  # the client went away or the server is stopping
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    finally:
        metrics.in_flight.dec()
        metrics.requests.labels(request.method, route, status).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


class _Scoped:
    """The registry as one caller may see it: samples of the workspaces in its scope, and the
    server-wide ones (no workspace label) only for a server-wide scope."""

    def __init__(self, registry: CollectorRegistry, scope: OpsScope) -> None:
        self.registry = registry
        self.scope = scope

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            samples = [s for s in family.samples if self._shows(s.labels.get("workspace"))]
            if samples:
                clone = Metric(family.name, family.documentation, family.type, family.unit)
                clone.samples = samples
                yield clone

    def _shows(self, workspace: str | None) -> bool:
        return self.scope.server_wide if workspace is None else workspace in self.scope.workspaces


async def metrics_handler(request: web.Request) -> web.Response:
    scope = ops_scope(request, request[ACTOR])
    data = generate_latest(_Scoped(request.app[METRICS].registry, scope))
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})



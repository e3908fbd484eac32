"""Numbers about runs, all from the in-memory index: per-worker stats and daily timeseries, the
workspace overview, logs across a worker's runs, and the CSV export."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from dataclasses import dataclass

from floom_git.schemas.run import (
    LEVELS,
    IndexEntry,
    Overview,
    RecentStats,
    TimeseriesPoint,
    WorkerLogLine,
    WorkerStats,
)
from floom_git.services import run_views, runs
from floom_git.services.workers import entry_or_404
from floom_git.services.workspaces import Workspace

CSV_COLUMNS = ("id", "worker_id", "worker_name", "status", "trigger_source", "created_at",
               "started_at", "completed_at", "duration_ms", "error_code")


def _rate(entries: list[IndexEntry]) -> float | None:
    done = [e for e in entries if e.status in ("completed", "failed")]
    if not done:
        return None
    return round(sum(e.status == "completed" for e in done) / len(done), 4)


def _pct(values: list[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Window:
    """The 7- and 14-day cutoffs (ISO, like created_at), taken once for a page of workers."""

    d7: str
    d14: str

    @classmethod
    def now(cls) -> Window:
        now = runs.now()
        return cls(*(runs.iso(now - dt.timedelta(days=n)) for n in (7, 14)))


def _windows(entries: list[IndexEntry],
             window: Window) -> tuple[list[IndexEntry], list[IndexEntry]]:
    """(runs of the last 7 days, runs of the 7 days before), from newest-first entries."""
    return ([e for e in entries if e.created_at >= window.d7],
            [e for e in entries if window.d14 <= e.created_at < window.d7])


def _recent(all_runs: list[IndexEntry], window: Window) -> RecentStats:
    last7, prev7 = _windows(all_runs, window)
    r7, rp = _rate(last7), _rate(prev7)
    return RecentStats(
        last_run_at=all_runs[0].created_at if all_runs else None, runs_7d=len(last7),
        success_rate_7d=r7,
        success_rate_change_7d=None if r7 is None or rp is None else round(r7 - rp, 4))


def recent_stats(ws: Workspace, worker_id: str, window: Window | None = None) -> RecentStats:
    """The list item's numbers: last run time and the 7-day success rate and its change.
    Reads only the last 14 days of the worker's runs (entries are newest first)."""
    window = Window.now() if window is None else window
    recent: list[IndexEntry] = []
    last_at = None
    for e in runs.store(ws).entries(worker_id):
        last_at = last_at or e.created_at
        if e.created_at < window.d14:
            break
        recent.append(e)
    if not recent:  # most workers of a page: nothing to count
        return RecentStats(last_run_at=last_at, runs_7d=0, success_rate_7d=None,
                           success_rate_change_7d=None)
    stats = _recent(recent, window)
    stats.last_run_at = last_at
    return stats


def worker_stats(ws: Workspace, worker_id: str) -> WorkerStats:
    if not runs.store(ws).count(worker_id):
        entry_or_404(ws, worker_id)
    d30 = runs.iso(runs.now() - dt.timedelta(days=30))
    all_runs = list(runs.store(ws).entries(worker_id))
    recent = _recent(all_runs, Window.now())
    last30 = [e for e in all_runs if e.created_at >= d30]
    durations = [
        e.duration_ms for e in all_runs if e.duration_ms is not None and e.status == "completed"
    ]
    failures = [e for e in all_runs if e.status == "failed"]
    counts: dict[str, int] = {}
    for e in all_runs:
        counts[e.status] = counts.get(e.status, 0) + 1
    rate_all = _rate(all_runs)
    cost = sum(e.cost_usd or 0.0 for e in all_runs)
    return WorkerStats(
        worker_id=worker_id, total_runs=len(all_runs), total_failures=len(failures),
        error_rate=None if rate_all is None else round(1 - rate_all, 4),
        runs_7d=recent.runs_7d, success_rate_7d=recent.success_rate_7d,
        success_rate_change_7d=recent.success_rate_change_7d,
        runs_30d=len(last30), success_rate_30d=_rate(last30),
        avg_duration_ms=int(sum(durations) / len(durations)) if durations else None,
        p50_duration_ms=_pct(durations, 0.5), p95_duration_ms=_pct(durations, 0.95),
        last_run_at=recent.last_run_at,
        last_error=failures[0].error if failures else None,
        last_error_at=(failures[0].completed_at or failures[0].created_at) if failures else None,
        counts=counts, total_cost_usd=round(cost, 6),
        avg_cost_usd=round(cost / len(all_runs), 6) if all_runs else None,
    )


def timeseries(ws: Workspace, worker_id: str, days: int) -> list[TimeseriesPoint]:
    """One point per UTC day for the last `days` days (today included), zero-filled."""
    if not runs.store(ws).count(worker_id):
        entry_or_404(ws, worker_id)
    today = runs.now().date()
    dates = [(today - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    points = {d: TimeseriesPoint(date=d, total=0, completed=0, failed=0) for d in dates}
    first = dates[0]
    for e in runs.store(ws).entries(worker_id):
        day = e.created_at[:10]
        if day < first:
            break
        point = points.get(day)
        if point is None:
            continue
        point.total += 1
        if e.status == "completed":
            point.completed += 1
        elif e.status == "failed":
            point.failed += 1
    return [points[d] for d in dates]


async def worker_logs(ws: Workspace, worker_id: str, level: str | None, since: str | None,
                      limit: int) -> list[WorkerLogLine]:
    """Log lines of the worker's runs, newest run first, until `limit` lines (read off the
    event loop)."""
    return await asyncio.to_thread(_worker_logs, ws, worker_id, level, since, limit)


def _worker_logs(ws: Workspace, worker_id: str, level: str | None, since: str | None,
                 limit: int) -> list[WorkerLogLine]:
    if not runs.store(ws).count(worker_id):
        entry_or_404(ws, worker_id)
        return []
    floor = LEVELS.index(level) if level else 0
    out: list[WorkerLogLine] = []
    store = runs.store(ws)
    for e in store.entries(worker_id):
        if since and e.created_at < since and (e.completed_at or e.created_at) < since:
            break
        for line in reversed(store.logs(e.id)):
            if line.level in LEVELS and LEVELS.index(line.level) < floor:
                continue
            if since and line.timestamp < since:
                continue
            out.append(WorkerLogLine(run_id=e.id, seq=line.seq, level=line.level,
                                     message=line.message, timestamp=line.timestamp))
            if len(out) >= limit:
                return out
    return out


def overview(ws: Workspace, pending: int) -> Overview:
    store = runs.store(ws)
    d7 = runs.iso(runs.now() - dt.timedelta(days=7))
    last7 = []
    queued = running = 0
    for e in store.entries():
        if e.status == "queued":
            queued += 1
        elif e.status == "running":
            running += 1
        if e.created_at >= d7:
            last7.append(e)
    workers = ws.workers.all()
    alerts = []
    for w in workers:
        if w.manifest is None:
            alerts.append({"kind": "worker_error", "worker_id": w.id, "detail": w.error})
    for e in last7:
        if e.status == "failed" and e.error_code not in ("approval_rejected", "cancelled_queued"):
            alerts.append({"kind": "run_failed", "worker_id": e.worker_id, "run_id": e.id,
                           "detail": f"{e.error_code}: {e.error}"})
            if len(alerts) >= 20:
                break
    recent = [run_views.summary(ws, e) for _, e in zip(range(10), store.entries(), strict=False)]
    return Overview(
        workers_count=len(workers), active_workers=sum(w.status == "ready" for w in workers),
        runs_total=store.count(), runs_7d=len(last7),
        runs_failed_7d=sum(e.status == "failed" for e in last7), success_rate_7d=_rate(last7),
        queued=queued, running=running, pending_approvals=pending, recent_runs=recent,
        alerts=alerts,
    )


def export_csv(ws: Workspace, query: run_views.RunQuery) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in run_views.matching(ws, query)[query.offset:query.offset + query.limit]:
        writer.writerow(["" if getattr(e, c) is None else getattr(e, c) for c in CSV_COLUMNS])
    return buf.getvalue()

"""A short load run against the real server subprocess: mixed reads, writes, runs and SSE
subscribers must produce no error, and once the traffic drains the server holds no more open
file descriptors or asyncio tasks than before it (within a small constant slack)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from benchmarks import load

ROOT = Path(__file__).resolve().parent.parent.parent
FD_SLACK = 8  # e.g. a SQLite WAL file or a pooled connection opened on first use
TASK_SLACK = 4


@pytest.mark.timeout(240)
def test_load_server_mixed_traffic_has_no_errors_and_no_growth(tmp_path: Path):
    opts = load.Options(duration=5.0, readers=6, writers=2, runners=1, sse=3, warmup=1.5,
                        work_dir=tmp_path / "load", quiet=True)
    report = asyncio.run(load.run(opts, fd_slack=FD_SLACK, task_slack=TASK_SLACK))
    summary = "\n".join(report.lines())
    assert report.errors == [], summary
    assert report.requests > 0 and report.latencies["read"] and report.latencies["write"], summary
    assert report.sse_streams > 0 and report.sse_closed == report.sse_streams, summary
    assert report.start is not None and report.end is not None
    assert report.end.fds <= report.start.fds + FD_SLACK, summary
    assert report.end.tasks <= report.start.tasks + TASK_SLACK, summary


def test_load_script_is_executable():
    assert os.access(ROOT / "scripts" / "load", os.X_OK)

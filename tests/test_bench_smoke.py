"""scripts/bench --quick runs end to end against a real server subprocess and prints its table.
It asserts no speed: numbers on a shared machine prove nothing in a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_run_bench_quick_prints_table():
    assert os.access(ROOT / "scripts" / "bench", os.X_OK)
    # Its own session, so a timeout also ends the servers it started.
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench", "--quick"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    for row in (
        "API writes/s, 1 client",
        "API writes/s, 8 clients",
        "GET /workers,",
        "GET /workers/{id}/versions",
        "git clone,",
        "on-disk edit",
        "run start latency",
        "run trigger -> process started",
        "run end to end (word-count)",
        "runs/s,",
        "sandboxed vs FLOOM_SANDBOX=none",
        "`/bin/true` confined vs plain",
        "trigger -> started p50, local executor",
        "trigger -> started p50, Celery, 1 executor process",
        "trigger -> started p50, Celery, 2 executor processes",
        "start-up,",
        "agent loop overhead per step, openai",
        "agent loop overhead per step, anthropic",
    ):
        assert row in out, out
    assert "| measure" in out and "machine:" in out

"""The bounded crash test: the real server as a subprocess under mixed load (API writes, git
pushes, runs), SIGKILLed at random moments at least 10 times; no acknowledged write, accepted
push or run may be lost, fsck must stay clean and every restart must succeed unaided."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import crash

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.timeout(300)  # under a minute on 2 busy cores; the margin is for slower machines
def test_kill_server_under_load_loses_nothing(tmp_path: Path):
    seed = random.randrange(2**32)
    opts = crash.Options(cycles=10, seed=seed, burst_min=0.5, burst_max=2.0, quiet=True,
                         work_dir=tmp_path / "crash")
    report = asyncio.run(crash.run(opts))
    summary = "\n".join(report.lines())
    assert report.violations == [], f"reproduce with scripts/crash-test --seed {seed}\n{summary}"
    assert report.cycles == 10, summary
    assert report.writes_acknowledged > 0 and report.writes_found == report.writes_acknowledged
    assert report.pushes_found == report.pushes_accepted, summary
    assert report.runs_acknowledged > 0, summary
    assert sum(report.runs_by_status.values()) >= report.runs_acknowledged, summary


@pytest.mark.timeout(300)
def test_crash_test_script_prints_counts_and_exits_zero(tmp_path: Path):
    assert os.access(ROOT / "scripts" / "crash-test", os.X_OK)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.crash", "--cycles", "1", "--seed", "7", "--burst-min",
         "0.3", "--burst-max", "0.6", "--quiet", "--work-dir", str(tmp_path / "crash")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for line in ("seed: 7", "cycles (SIGKILL + restart): 1", "writes acknowledged:",
                 "pushes accepted:", "runs acknowledged:", "violations: 0"):
        assert line in proc.stdout, proc.stdout

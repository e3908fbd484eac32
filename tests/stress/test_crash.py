"""The bounded crash test: the real server as a subprocess under mixed load (API writes, git
pushes, runs), SIGKILLed at random moments at least 10 times; no acknowledged write, accepted
push or run may be lost, fsck must stay clean and every restart must succeed unaided."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from benchmarks import crash

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.timeout(300)  # about a minute on 2 busy cores; the margin is for slower machines
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


def test_crash_test_script_is_executable():
    assert os.access(ROOT / "scripts" / "crash-test", os.X_OK)

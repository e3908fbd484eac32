"""scripts/bench --quick --check runs end to end against a real server subprocess, prints its
table, and holds the guarded ratios against their floors (benchmarks/floors.py): each ratio is
measured side by side with its baseline in alternating rounds, and fails only when it is below
its floor by more than half its rounds' spread, so load from other programs does not fail it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import measure

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(420)
def test_run_bench_quick_prints_table_and_holds_the_floors():
    assert os.access(ROOT / "scripts" / "bench", os.X_OK)
    # Its own session, so a timeout also ends the servers it started.
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench", "--quick", "--check"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    assert proc.returncode == 0, (out[-3000:], err[-3000:])
    for row in (
        "API writes/s, 1 client",
        "API writes/s, 8 clients",
        "creating a file where each writes",
        "GET /workers,",
        "GET /workers/{id}/versions",
        "a write before each read",
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
    assert "| measure" in out and "machine:" in out and ", data on " in out
    assert "regression guard" in out and "FAIL" not in out


def test_guard_fails_a_ratio_below_its_floor_by_more_than_the_noise():
    from benchmarks.floors import FLOORS, judge

    writes, push = FLOORS["writes_8"].value, FLOORS["push"].value
    verdicts = {v.name: v for v in judge({
        "writes_1": [9.0, 9.5], "writes_8": [writes - 0.1, writes + 0.3],  # within the noise
        "push": [push / 2, push / 2 + 0.01],  # steadily far under: the hook in its process
    })}
    assert verdicts["writes_1"].ok and verdicts["writes_8"].ok
    assert not verdicts["push"].ok
    assert not verdicts["clone"].ok  # not measured at all


@pytest.mark.timeout(300)
def test_side_by_side_serves_both_trees_and_swaps_their_data_halfway():
    """benchmarks.side_by_side (the A/B of two source trees) runs end to end: here the same tree
    on both sides, one round per half, and prints each half's ratio."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.side_by_side", str(ROOT), str(ROOT), "--rounds", "1",
         "--writes", "5"], cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    data_on, ratio, old, new = done.stdout.strip().splitlines()
    assert data_on.startswith("data on ")
    assert ratio.startswith("new/old server CPU per write, 1 client(s): median ")
    assert "(halves " in ratio and ratio.count(", ") >= 2
    assert old.startswith("old: CPU ") and new.startswith("new: CPU ")


def test_the_bench_names_the_file_system_under_its_data(tmp_path):
    """A write's CPU depends on it (ext4 without a journal: benchmarks/measure.py)."""
    kind = measure.filesystem(tmp_path)
    assert kind != "unknown file system"
    assert f" - {kind.split()[0]} " in Path("/proc/self/mountinfo").read_text()
    if kind.startswith(("ext3", "ext4")):
        assert " a journal (" in kind, kind
    if Path("/dev/shm").is_dir():
        assert measure.filesystem(Path("/dev/shm")).startswith("tmpfs")


def test_the_bench_times_creating_a_file_where_each_server_writes(tmp_path):
    """The files stay (removing them would make the next creations there dearer)."""
    took = measure.file_creation_us(tmp_path / "probe", n=16)
    assert 0 < took < 1_000_000
    assert sorted(p.name for p in (tmp_path / "probe").iterdir()) == sorted(
        f"f{i}" for i in range(16))
    with pytest.raises(FileExistsError):  # a new folder each time: never one with holes
        measure.file_creation_us(tmp_path / "probe", n=1)


def test_side_by_side_reports_rounds_too_short_to_show_cpu_as_n_a():
    """CPU comes in 10 ms clock ticks: a round of a few fast writes can show none. The report
    says n/a for what it cannot tell, and still gives the rest (no division by zero)."""
    from benchmarks.side_by_side import report

    quiet = [[(0.0, 2.0, 0.0, 2.0), (0.0, 2.1, 2.0, 2.1)]] * 2
    lines = report(quiet, 1)
    assert lines[0] == ("new/old server CPU per write, 1 client(s): median n/a (halves n/a, "
                        "n/a); time per write: median 1.000")
    some = [[(0.0, 2.0, 2.0, 2.0), (2.0, 2.0, 1.0, 2.0)], [(4.0, 2.0, 2.0, 2.0)]]
    assert report(some, 8)[0].startswith(
        "new/old server CPU per write, 8 client(s): median 0.500 (halves 0.500, 0.500)")
    assert report(some, 8)[1:] == ["old: CPU 2.00 ms, time 2.00 ms per write (medians)",
                                   "new: CPU 2.00 ms, time 2.00 ms per write (medians)"]

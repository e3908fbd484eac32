"""`python -m benchmarks.side_by_side OLD NEW [--clients N] [--rounds R] [--writes W]`: the
server CPU and time per API write of two floom-git source trees (two checkouts, e.g. from
`git worktree add`), each served by this interpreter with its tree first on the path.

Both servers run at once and take turns, alternating which goes first in each round, and each
round's ratio pairs the two runs closest in time. Halfway, both stop and restart on each
other's data directory: on a shared VM the data directory alone moved a server's CPU per write
by up to 20 % (same code on both sides; ext4 without a journal, where allocating an inode
steps past every recently freed one nearby), which a run without the swap reports as a
difference between the trees. Each half's median is printed: when they disagree in direction,
the difference is not resolved by this run."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterable
from pathlib import Path

from benchmarks import fixtures, measure, server
from benchmarks.server import Server


def start(tree: Path, data: Path, log: Path) -> Server:
    """A server of `tree`'s floom_git: run from the tree, which comes first on the path."""
    return server.start(tree.name, server.floom_args(data), log,
                        server.server_env({"PYTHONPATH": str(tree)}), cwd=tree)


def measure_pair(trees: tuple[Path, Path], clients: int, rounds: int,
                 writes: int) -> list[list[tuple[float, float, float, float]]]:
    """Per half, per round: (old CPU ms, old wall ms, new CPU ms, new wall ms) per write."""
    work = Path(tempfile.mkdtemp(prefix="floom-side-by-side-"))
    try:
        datas = [work / f"data{i}" for i in (0, 1)]
        for data in datas:
            fixtures.create_workspaces(data, ["bench-writes"])
        halves = []
        for half in (0, 1):
            running = [start(tree, datas[(i + half) % 2], work / f"{i}-{half}.log")
                       for i, tree in enumerate(trees)]
            try:
                for each in running:
                    measure.write_seconds(each, clients, min(writes, 40), f"warm{half}")
                rows = []
                for r in range(rounds):
                    got: dict[int, tuple[float, float]] = {}
                    for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                        pid = running[i].proc.pid
                        before = measure.cpu_seconds(pid) or 0.0
                        took = measure.write_seconds(running[i], clients, writes,
                                                     f"h{half}r{r}", 0)
                        cpu = (measure.cpu_seconds(pid) or 0.0) - before
                        got[i] = (cpu / writes * 1000, took / writes * 1000)
                    rows.append((*got[0], *got[1]))
                halves.append(rows)
            finally:
                for each in running:
                    each.stop()
        return halves
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.side_by_side", description=__doc__)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8, help="rounds per half")
    parser.add_argument("--writes", type=int, default=100, help="writes per server per round")
    args = parser.parse_args(argv)
    for key, value in (("NAME", "floom-bench"), ("EMAIL", "bench@floom.local")):
        os.environ.setdefault(f"GIT_AUTHOR_{key}", value)
        os.environ.setdefault(f"GIT_COMMITTER_{key}", value)
    trees = (args.old.resolve(), args.new.resolve())
    print(f"data on {measure.filesystem(Path(tempfile.gettempdir()))}", flush=True)
    halves = measure_pair(trees, args.clients, args.rounds, args.writes)
    for line in report(halves, args.clients):
        print(line)
    return 0


def report(halves: list[list[tuple[float, float, float, float]]], clients: int) -> list[str]:
    """The lines printed: new/old medians over all rounds and per half, then each side's. CPU
    is counted in clock ticks (10 ms): a round too short to show any on the old side has no
    CPU ratio, and a median of none is "n/a", never a division by zero."""
    rows = [row for half in halves for row in half]
    each = ", ".join(_median(_ratio(new, old) for old, _, new, _ in half) for half in halves)
    lines = [f"new/old server CPU per write, {clients} client(s): median "
             f"{_median(_ratio(new, old) for old, _, new, _ in rows)} (halves {each}); time "
             f"per write: median {_median(_ratio(new, old) for _, old, _, new in rows)}"]
    for name, at in (("old", 0), ("new", 2)):
        lines.append(f"{name}: CPU {statistics.median(r[at] for r in rows):.2f} ms, time "
                     f"{statistics.median(r[at + 1] for r in rows):.2f} ms per write (medians)")
    return lines


def _ratio(new: float, old: float) -> float | None:
    return new / old if old > 0 else None


def _median(values: Iterable[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.3f}" if known else "n/a"


if __name__ == "__main__":
    raise SystemExit(main())

"""The regression guard's floors, all in one place.

`scripts/bench --quick --check` (run by the test suite, tests/test_bench_smoke.py) measures each
ratio below in rounds that alternate floom-git with its baseline, so load from other programs
hits both alike, and fails when a ratio's median is below its floor by more than half the
spread of its rounds (the noise that run shows). Every ratio reads "higher is better". The
floors sit far under what a 2-CPU machine measures, quiet or loaded (README, Performance): the
guard catches a lost mechanism (the pre-receive hook back in a Python process of its own,
commits several times dearer, a clone no longer streamed), not a few percent, and it does not
fail on noise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Floor:
    value: float
    what: str


FLOORS: dict[str, Floor] = {
    "writes_1": Floor(1.1, "API writes/s over the git add + git commit server, 1 client"),
    "writes_8": Floor(1.4, "API writes/s over the git add + git commit server, 8 clients"),
    "push": Floor(0.2, "file:// push time over push time with validation (<= 5x as slow)"),
    "clone": Floor(0.4, "file:// clone time over clone time via /git/<ws>.git (<= 2.5x as slow)"),
}


@dataclass(frozen=True)
class Verdict:
    name: str
    median: float
    spread: float  # max - min over the rounds
    floor: float

    @property
    def noise(self) -> float:
        return self.spread / 2

    @property
    def ok(self) -> bool:
        return self.median >= self.floor - self.noise


def judge(ratios: dict[str, list[float]]) -> list[Verdict]:
    """A verdict for every floor; a ratio the run did not measure fails."""
    import statistics

    out = []
    for name, floor in FLOORS.items():
        rounds = ratios.get(name) or [0.0]
        out.append(Verdict(name, statistics.median(rounds), max(rounds) - min(rounds),
                           floor.value))
    return out

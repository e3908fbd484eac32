"""`scripts/crash-test [--cycles N] [--seed S]`: run the real server as a subprocess, drive mixed
load (API writes, git pushes including file <-> folder changes, people saving files in the working
trees, runs), SIGKILL it at random moments, restart it and prove DESIGN invariant 8 and "no edit
is lost" each time. Prints the counts; exits 1 on any violation."""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import crash_checks as checks
from benchmarks.crash_load import Load, burst, setup
from benchmarks.stress_server import ServerProcess, server_env


@dataclass(frozen=True)
class Options:
    cycles: int = 20
    seed: int | None = None
    burst_min: float = 0.3  # seconds of load before the kill (uniform between min and max)
    burst_max: float = 2.0
    writers: int = 4
    pushers: int = 2
    editors: int = 1  # people saving files in the working trees
    runners: int = 1
    workspaces: tuple[str, ...] = ("default", "crash-b")
    max_concurrent_runs: int = 1  # low, so that kills find runs both queued and running
    startup_kills: float = 0.15  # chance that a restart is itself killed during its recovery
    kill_group: bool = True  # False: SIGKILL the server alone; its git children live on
    work_dir: Path | None = None  # kept afterwards when given
    quiet: bool = False


@dataclass
class Report:
    seed: int
    cycles: int = 0
    writes_acknowledged: int = 0
    writes_found: int = 0
    pushes_accepted: int = 0
    pushes_found: int = 0
    pushes_rejected: int = 0
    edits_saved: int = 0
    edits_found: int = 0
    refused_over_edits: int = 0
    runs_acknowledged: int = 0
    cut_by_kill: int = 0
    startup_kills: int = 0
    runs_by_status: Counter = field(default_factory=Counter)
    recovered: Counter = field(default_factory=Counter)
    attempts: Counter = field(default_factory=Counter)
    start_seconds: list[float] = field(default_factory=list)
    phase_seconds: Counter = field(default_factory=Counter)  # where the wall time went
    violations: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # 4xx answers to valid requests
    lost: set[str] = field(default_factory=set)  # markers of writes already reported lost

    def lines(self) -> list[str]:
        starts = sorted(self.start_seconds) or [0.0]
        return [
            f"seed: {self.seed}",
            (
                f"cycles (SIGKILL + restart): {self.cycles}, restarts killed during start-up: "
                f"{self.startup_kills}"
            ),
            f"writes acknowledged: {self.writes_acknowledged}, "
            f"found in history: {self.writes_found}",
            (
                f"pushes accepted: {self.pushes_accepted}, found in history: {self.pushes_found} "
                f"(non-fast-forward retries: {self.pushes_rejected})"
            ),
            (
                f"disk edits saved: {self.edits_saved}, found in history: {self.edits_found} "
                f"(writes and pushes refused over an unsynced edit: {self.refused_over_edits})"
            ),
            f"runs acknowledged: {self.runs_acknowledged}; final status: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.runs_by_status.items())),
            "recovery: "
            + (
                ", ".join(f"{k} {v}" for k, v in sorted(self.recovered.items()))
                or "nothing was in flight"
            ),
            f"requests or pushes cut off by a kill: {self.cut_by_kill}",
            "attempted: " + ", ".join(f"{k} {v}" for k, v in sorted(self.attempts.items())),
            f"restart to healthy: median {starts[len(starts) // 2]:.2f} s, max {starts[-1]:.2f} s",
            "time spent: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.phase_seconds.items()),
            f"unexpected 4xx answers: {len(self.refusals)}",
            *(f"  - {r}" for r in self.refusals[:20]),
            f"violations: {len(self.violations)}",
            *(f"  - {v}" for v in self.violations[:50]),
        ]


def _say(opts: Options, text: str) -> None:
    if not opts.quiet:
        print(text, file=sys.stderr, flush=True)


async def run(opts: Options) -> Report:
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2**32)
    report = Report(seed=seed)
    rng = random.Random(seed)
    root = opts.work_dir or Path(tempfile.mkdtemp(prefix="floom-crash-"))
    root.mkdir(parents=True, exist_ok=True)
    env = server_env({"FLOOM_MAX_CONCURRENT_RUNS": str(opts.max_concurrent_runs),
                      "FLOOM_SYNC_QUIET_SECONDS": "0.3"})
    server = ServerProcess(root / "data", root / "server.log", env=env)
    load = Load(opts.workspaces, root / "clients", rng, data_dir=root / "data")
    try:
        server.start()
        await server.wait_ready()
        await setup(load, server, opts.pushers)
        for cycle in range(1, opts.cycles + 1):
            await _cycle(opts, server, load, report, rng, cycle)
            if report.violations and any(v.startswith("server") for v in report.violations):
                break  # it does not start: nothing more to learn
        await _finish(server, load, report)
    finally:
        server.kill()
        if opts.work_dir is None and not report.violations:
            shutil.rmtree(root, ignore_errors=True)
        elif report.violations:
            _say(opts, f"kept {root} (server.log, data/) for inspection")
    return report


async def _cycle(opts: Options, server: ServerProcess, load: Load, report: Report,
                 rng: random.Random, cycle: int) -> None:
    acked_runs_before = set(load.runs)
    kill_after = rng.uniform(opts.burst_min, opts.burst_max)
    clock = time.monotonic()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        report.phase_seconds[name] += now - clock
        clock = now

    await burst(load, server, kill_after, opts.writers, opts.pushers, opts.runners,
                opts.kill_group, opts.editors)
    phase("load")
    report.cycles = cycle
    data = server.data_dir
    # On the disk exactly as the crash left it: acknowledged means durable.
    missing = await asyncio.to_thread(checks.missing_acks, data, load.acks)
    broken = await asyncio.to_thread(checks.fsck, data, crashed=True)
    states = await asyncio.to_thread(checks.run_states, data)
    fresh = [m for ack, m in missing if ack.marker not in report.lost]
    report.lost.update(ack.marker for ack, _ in missing)
    _add(report, [f"cycle {cycle}: {p}" for p in fresh + broken])
    phase("disk checks")
    if rng.random() < opts.startup_kills:
        # Recovery itself must survive a crash: start, kill it part-way, and look again.
        server.start()
        await asyncio.sleep(rng.uniform(0.05, 1.5))
        server.kill()
        report.startup_kills += 1
        states = await asyncio.to_thread(checks.run_states, data)
        phase("killed start-ups")
    started = time.monotonic()
    server.start()
    try:
        report.start_seconds.append(await server.wait_ready())
    except RuntimeError as exc:
        _add(report, [f"server did not start after kill {cycle} without repair: {exc}"])
        return
    phase("restart")
    new_runs = {rid: v for rid, v in load.runs.items() if rid not in acked_runs_before}
    terminal = [rid for ws in states.values() for rid, (s, _) in ws.items() if s in checks.TERMINAL]
    sample = rng.sample(terminal, min(10, len(terminal)))
    problems = await checks.check_recovery(server, states, new_runs, report.recovered, sample)
    problems += await checks.settled_worktrees(data)
    edits = await asyncio.to_thread(checks.missing_edits, data, load.edits)
    problems += [m for edit, m in edits if edit.marker not in report.lost]
    report.lost.update(edit.marker for edit, _ in edits)
    problems += await checks.health_problems(server)
    phase("recovery checks")
    _add(report, [f"cycle {cycle}: {p}" for p in problems])
    _say(opts, f"cycle {cycle}: killed after {kill_after:.2f} s; {len(load.acks)} acks so far; "
               f"restart {time.monotonic() - started:.1f} s; "
               f"{len(missing) + len(broken) + len(problems)} problems")


async def _finish(server: ServerProcess, load: Load, report: Report) -> None:
    """Count runs, stop gracefully, and check history and fsck one last time."""
    clock = time.monotonic()
    report.runs_by_status = await checks.runs_by_status(server, list(load.workspaces))
    code = server.stop()
    report.phase_seconds["graceful stop"] += time.monotonic() - clock
    if code != 0:
        _add(report, ["graceful stop (SIGTERM): " + ("did not end in time" if code is None
                                                     else f"exit code {code}")])
    data = server.data_dir
    missing = await asyncio.to_thread(checks.missing_acks, data, load.acks)
    _add(report, [f"final: {m}" for ack, m in missing if ack.marker not in report.lost])
    _add(report, [f"final: {p}" for p in await asyncio.to_thread(checks.fsck, data)])
    _add(report, [f"server error from a live server: {e}" for e in load.errors])
    # Every request of the load is valid: a 4xx refused an acknowledged-worthy write (the old
    # "shape is a folder on disk" 409s after a push turned a folder into a file).
    _add(report, [f"valid request refused by a live server: {r}" for r in load.refusals])
    report.refusals = list(load.refusals)
    lost = report.lost | {ack.marker for ack, _ in missing}
    pushes = [a for a in load.acks if a.kind == "push"]
    writes = [a for a in load.acks if a.kind != "push"]
    report.writes_acknowledged = len(writes)
    report.writes_found = sum(1 for a in writes if a.marker not in lost)
    report.pushes_accepted = len(pushes)
    report.pushes_found = sum(1 for a in pushes if a.marker not in lost)
    report.pushes_rejected = load.pushes_rejected
    report.edits_saved = len(load.edits)
    report.edits_found = sum(1 for e in load.edits if e.marker not in report.lost)
    report.refused_over_edits = load.refused_over_edits
    report.runs_acknowledged = len(load.runs)
    report.cut_by_kill = load.cut
    report.attempts = load.attempts


def _add(report: Report, problems: list[str]) -> None:
    for p in problems:
        if p not in report.violations:
            report.violations.append(p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/crash-test", description=__doc__)
    parser.add_argument("--cycles", type=int, default=Options.cycles, help="kill/restart cycles")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed when omitted)")
    parser.add_argument("--burst-min", type=float, default=Options.burst_min,
                        help="least seconds of load before a kill")
    parser.add_argument("--burst-max", type=float, default=Options.burst_max,
                        help="most seconds of load before a kill")
    parser.add_argument(
        "--writers", type=int, default=Options.writers, help="concurrent API writers"
    )
    parser.add_argument(
        "--pushers", type=int, default=Options.pushers, help="concurrent git pushers"
    )
    parser.add_argument("--editors", type=int, default=Options.editors,
                        help="people saving files in the working trees")
    parser.add_argument("--startup-kills", type=float, default=Options.startup_kills,
                        help="chance that a restart is killed again during start-up")
    parser.add_argument("--kill-server-only", action="store_true",
                        help="SIGKILL the server process alone (git children become orphans), "
                             "as an OOM kill would; default: its whole process group")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the data dir, clones and server log here")
    parser.add_argument("--quiet", action="store_true", help="print only the final counts")
    args = parser.parse_args(argv)
    opts = Options(cycles=args.cycles, seed=args.seed, burst_min=args.burst_min,
                   burst_max=max(args.burst_min, args.burst_max), writers=args.writers,
                   pushers=args.pushers, editors=args.editors,
                   startup_kills=args.startup_kills,
                   kill_group=not args.kill_server_only,
                   work_dir=args.work_dir, quiet=args.quiet)
    report = asyncio.run(run(opts))
    print("\n".join(report.lines()))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""`scripts/bench [--quick] [--check]`: start the real server as a subprocess on a temp data dir,
measure writes, reads, history, clone, push, live edits and run starts side by side with
baselines, and print one table. Numbers vary with the machine; compare the ratios. `--check`
then holds the guarded ratios against their floors (benchmarks/floors.py) and exits 1 when one
falls below its floor by more than its rounds' spread."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import (
    agent_loop,
    auth_overhead,
    celery_cost,
    fixtures,
    floors,
    measure,
    sandbox_cost,
)
from benchmarks.server import Server, floom_args, spawn, start_baseline, start_floom

Ratios = dict[str, list[float]]  # guarded ratio -> its value in each round (higher is better)


@dataclass(frozen=True)
class Sizes:
    writes: int = 400
    workers: int = 200
    history: int = 100_000
    clone_history: int = 10_000
    list_requests: int = 400
    version_requests: int = 200
    clone_repeats: int = 8  # each under a second of wall time: 4 left the median 5 % apart
    pushes: int = 12
    edits: int = 5
    runs: int = 5
    run_latency: int = 100  # sequential runs for trigger -> start and end-to-end latency
    run_burst: int = 200  # runs fired by run_clients clients for runs/s
    run_clients: int = 8
    run_records: int = 100_000  # records on floom/runs for the start-up time
    sandbox_runs: int = 100  # end-to-end runs per server, sandboxed and FLOOM_SANDBOX=none
    celery_runs: int = 200  # runs/s per executor setup (local, Celery with 1 and 2 executors)
    celery_latency: int = 50  # sequential runs for trigger -> start per setup


QUICK = Sizes(
    writes=48,
    workers=10,
    history=300,
    clone_history=2_000,  # enough that a clone is not all process start-up
    list_requests=20,
    version_requests=10,
    clone_repeats=4,
    pushes=8,
    edits=1,
    runs=1,
    run_latency=5,
    run_burst=5,
    run_clients=2,
    run_records=1_000,
    sandbox_runs=4,
    celery_runs=4,
    celery_latency=2,
)


@dataclass
class Row:
    measure: str
    floom: str
    baseline: str = ""
    comparison: str = ""
    note: str = ""


def machine(data_on: str) -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gitv = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {gitv}, "
        f"{platform.system()} {platform.release()}, data on {data_on}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def print_table(rows: list[Row]) -> None:
    head = Row("measure", "floom-git", "baseline", "comparison", "note")
    cols = ["measure", "floom", "baseline", "comparison", "note"]
    widths = [max(len(getattr(r, c)) for r in [head, *rows]) for c in cols]
    for i, row in enumerate([head, *rows]):
        cells = (getattr(row, c).ljust(w) for c, w in zip(cols, widths, strict=True))
        print("| " + " | ".join(cells) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def bench_writes(sizes: Sizes, floom: Server, baseline: Server, rows: list[Row],
                 ratios: Ratios, folders: dict[str, Path]) -> None:
    """`folders`: where each server's repository is, to time a file creation there (a row
    below the writes: on ext4 without a journal it moves a write's CPU, see measure)."""
    for server in (floom, baseline):
        measure.warm_and_quiet(server)
    creating = {name: [measure.file_creation_us(folder / "bench-probe-before")]
                for name, folder in folders.items()}
    for clients in (1, 8):
        spent = {"floom": 0.0, "baseline": 0.0}
        cpu: dict[str, float | None] = {"floom": 0.0, "baseline": 0.0}
        rounds = ratios.setdefault(f"writes_{clients}", [])
        # Alternate in rounds so a load spike on a shared machine hits both servers alike.
        per_round = max(clients, sizes.writes // measure.ROUNDS)
        for first in range(0, sizes.writes, per_round):
            count = min(per_round, sizes.writes - first)
            took = {}
            for name, server in (("floom", floom), ("baseline", baseline)):
                before = measure.cpu_seconds(server.proc.pid)
                took[name] = measure.write_seconds(server, clients, count, f"c{clients}", first)
                spent[name] += took[name]
                after = measure.cpu_seconds(server.proc.pid)
                used = cpu[name]
                cpu[name] = None if None in (before, after, used) else used + after - before
            rounds.append(took["baseline"] / took["floom"])
        ours, theirs = sizes.writes / spent["floom"], sizes.writes / spent["baseline"]
        plural = "s" if clients > 1 else ""
        rows.append(
            Row(
                f"API writes/s, {clients} client{plural} ({sizes.writes} PUTs)",
                f"{ours:.0f}/s",
                f"{theirs:.0f}/s",
                f"{ours / theirs:.1f}x",
                f"baseline: git add + git commit per write; rounds {_span(rounds)}",
            )
        )
        ours_cpu, theirs_cpu = cpu["floom"], cpu["baseline"]
        if ours_cpu and theirs_cpu:
            rows.append(
                Row(
                    f"  server CPU per write, {clients} client{plural}",
                    ms(ours_cpu / sizes.writes),
                    ms(theirs_cpu / sizes.writes),
                    f"{theirs_cpu / ours_cpu:.1f}x less",
                    "server process + its git children; steadier than wall time",
                )
            )
    for name, folder in folders.items():
        creating[name].append(measure.file_creation_us(folder / "bench-probe-after"))
    rows.append(
        Row(
            "  creating a file where each writes, median of 64",
            "{:.0f} / {:.0f} µs".format(*creating["floom"]),
            "{:.0f} / {:.0f} µs".format(*creating["baseline"]),
            "before / after the writes",
            "ext4 without a journal steps past inodes freed nearby in the last minutes",
        )
    )


def _span(rounds: list[float]) -> str:
    return f"{min(rounds):.1f}-{max(rounds):.1f}x" if rounds else "-"


def bench_group_commit(sizes: Sizes, work: Path, rows: list[Row]) -> None:
    r = measure.group_commit(work, sizes.writes, 8)
    rows.append(
        Row(
            "Writer alone (no HTTP), 8 concurrent writers",
            f"{r['chain']:.0f}/s",
            f"{r['serial']:.0f}/s",
            f"{r['chain'] / r['serial']:.1f}x",
            f"baseline: same writes one at a time; mean group {r['batch']:.1f} commits",
        )
    )
    rows.append(
        Row(
            "  CPU per write",
            ms(r["chain_cpu"]),
            ms(r["serial_cpu"]),
            f"{r['serial_cpu'] / r['chain_cpu']:.1f}x less",
        )
    )
    rows.append(
        Row(
            "  alternative: squash each group of 8 into 1 commit",
            f"{r['squash']:.0f}/s",
            comparison=f"CPU {ms(r['squash_cpu'])}",
            note="not shipped: a write must stay its own commit",
        )
    )


def check_writes(data: Path, sizes: Sizes, rows: list[Row]) -> None:
    repo = data / "workspaces" / "bench-writes"
    commits = int(fixtures.git(repo, "rev-list", "--count", "main"))
    clean = fixtures.git(repo, "status", "--porcelain") == ""
    fixtures.git(repo, "fsck", "--no-progress")
    rows.append(
        Row(
            "  acknowledged writes in history",
            f"{commits - 1 - measure.WARM_WRITES}/{2 * sizes.writes}",
            note=f"git status clean: {clean}; git fsck: ok",
        )
    )


def bench_reads(sizes: Sizes, floom: Server, rows: list[Row]) -> None:
    for clients in (1, 8):
        rate = measure.gets_per_second(
            floom, "/api/workers?limit=500", clients, sizes.list_requests
        )
        rows.append(
            Row(
                f"GET /workers, {sizes.workers + 3} workers, {clients} client"
                f"{'s' if clients > 1 else ''}",
                f"{rate:.0f} req/s",
            )
        )
    # A worker's versions: first read (a walk of the commit-graph with its changed-path Bloom
    # filters), read again (the log kept at main's tip), and with a commit before each read
    # (the kept log brought forward over it). The target changed every 100 commits; the other
    # workers were made once, at the start of the history, so their first read walks all of it.
    path = f"/api/workers/{fixtures.TARGET}/versions"
    history = f"{sizes.history:,} commits"
    (first,) = measure.get_latencies(floom, path, 1)
    rows.append(Row(f"GET /workers/{{id}}/versions, {history}: first read", ms(first),
                    note=f"one read: git log walks {min(sizes.history, 5_000):,} commits for 50"))
    lat = measure.get_latencies(floom, path, sizes.version_requests)
    p50, p99 = measure.quantiles(lat)
    rows.append(Row(f"GET /workers/{{id}}/versions, {history}: read again", f"p50 {ms(p50)}",
                    comparison=f"p99 {ms(p99)}", note="aim <= 20 ms; the log kept at main's tip"))
    lat = measure.get_latencies(floom, path, sizes.version_requests // 4, write_before="default")
    p50, p99 = measure.quantiles(lat)
    rows.append(Row(f"GET /workers/{{id}}/versions, {history}: a write before each read",
                    f"p50 {ms(p50)}", comparison=f"p99 {ms(p99)}",
                    note="the kept log brought forward over the new commit"))
    once = [measure.get_latencies(floom, f"/api/workers/bench-w{i:03d}/versions", 1)[0]
            for i in range(1, min(sizes.workers, 5) + 1)]
    rows.append(Row(f"GET /workers/{{id}}/versions, {history}: first read, one version",
                    f"p50 {ms(statistics.median(once))}",
                    note=f"{len(once)} workers made at the start: git log walks all history"))


def bench_git(sizes: Sizes, floom: Server, data: Path, work: Path, rows: list[Row],
              ratios: Ratios) -> None:
    repo = data / "workspaces" / "bench-clone"
    label = f"git clone, {sizes.clone_history} commits"
    if not measure.git_http_available(floom, "bench-clone"):
        rows.append(Row(label, "n/a", note="/git/<ws>.git not served by this build"))
        rows.append(Row("git push latency (with hook)", "n/a", note="needs /git/<ws>.git"))
        return
    # Clones and pushes alternate in rounds, each against its file:// baseline.
    served: list[float] = []
    local: list[float] = []
    for _ in range(sizes.clone_repeats):
        served.append(measure.clone_seconds(floom.git_url("bench-clone"), 1))
        local.append(measure.clone_seconds(f"file://{repo}", 1))
        ratios.setdefault("clone", []).append(local[-1] / served[-1])
    ours, theirs = statistics.median(served), statistics.median(local)
    rows.append(
        Row(
            label,
            f"{ours:.2f} s",
            f"{theirs:.2f} s",
            f"{ours / theirs:.2f}x time",
            "baseline: file:// clone; aim <= 1.1x",
        )
    )
    bare = work / "push-baseline.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", f"file://{data / 'workspaces' / 'bench-writes'}",
         str(bare)],
        check=True,
        capture_output=True,
    )
    ours_co = measure.push_checkout(floom.git_url("bench-writes"), work / "push-floom")
    theirs_co = measure.push_checkout(f"file://{bare}", work / "push-file")
    pushes: list[float] = []
    local_pushes: list[float] = []
    per_round = max(1, sizes.pushes // measure.ROUNDS)
    for first in range(0, sizes.pushes, per_round):
        count = min(per_round, sizes.pushes - first)
        pushes += (mine := measure.push_latencies(ours_co, count, first))
        local_pushes += (base := measure.push_latencies(theirs_co, count, first))
        ratios.setdefault("push", []).append(statistics.median(base) / statistics.median(mine))
    p50, _ = measure.quantiles(pushes)
    b50, _ = measure.quantiles(local_pushes)
    rows.append(
        Row(
            "git push latency (with validation), p50",
            ms(p50),
            ms(b50),
            f"{p50 / b50:.1f}x time",
            "baseline: push to a file:// bare repository, no hook; aim <= 3x",
        )
    )


def bench_live(sizes: Sizes, floom: Server, data: Path, rows: list[Row]) -> None:
    lat = measure.edit_to_visible(floom, data / "workspaces" / "default", sizes.edits)
    if lat is None:
        rows.append(
            Row(
                "on-disk edit -> visible in API",
                "n/a",
                note=f"not visible within {measure.WAIT:.0f} s: no watcher in this build",
            )
        )
    else:
        p50, p99 = measure.quantiles(lat)
        rows.append(
            Row(
                "on-disk edit -> visible in API, p50",
                ms(p50),
                comparison=f"p99 {ms(p99)}",
                note="aim about 1 s",
            )
        )
    runs = measure.run_start_latencies(floom, sizes.runs)
    if runs is None:
        rows.append(Row("run start latency", "n/a", note="no run engine (POST /workers/{id}/runs)"))
    else:
        p50, p99 = measure.quantiles(runs)
        rows.append(
            Row("run start latency (POST -> not queued), p50", ms(p50), comparison=f"p99 {ms(p99)}")
        )


def bench_runs(sizes: Sizes, floom: Server, data: Path, rows: list[Row]) -> None:
    """The run engine: trigger -> process start, end-to-end latency of the trivial word-count
    script, and runs/s with every record committed to floom/runs."""
    lat = measure.run_latencies(floom, sizes.run_latency)
    if lat is None:
        rows.append(Row("run engine", "n/a", note="no run engine (POST /workers/{id}/runs)"))
        return
    n = sizes.run_latency
    p50, p99 = measure.quantiles(lat["to_start"])
    c50, _ = measure.quantiles(lat["created_to_start"])
    rows.append(
        Row(
            f"run trigger -> process started, p50 ({n} runs)",
            ms(p50),
            comparison=f"p99 {ms(p99)}",
            note=f"POST sent -> 'Started' log line (ms clock); created_at -> it p50 {ms(c50)}",
        )
    )
    p50, p99 = measure.quantiles(lat["e2e"])
    rows.append(
        Row(
            f"run end to end (word-count), p50 ({n} runs)",
            ms(p50),
            comparison=f"p99 {ms(p99)}",
            note="POST -> SSE close `completed`, one at a time; aim < 150 ms",
        )
    )
    repo = data / "workspaces" / "default"
    r = measure.run_throughput(floom, repo, sizes.run_burst, sizes.run_clients)
    rows.append(
        Row(
            f"runs/s, {sizes.run_clients} clients ({sizes.run_burst} runs, {os.cpu_count()} CPUs)",
            f"{r['rate']:.1f}/s",
            comparison=f"{r['committed']:.0f}/{sizes.run_burst} on floom/runs",
            note=f"completed {r['completed']:.0f}; all committed (checked) "
            f"{ms(r['commit_lag'])} after the "
            f"last ended, in {r['commits']:.0f} commits",
        )
    )


def bench_sandbox(sizes: Sizes, work: Path, rows: list[Row]) -> None:
    """Confinement's cost: word-count end to end, bwrap against FLOOM_SANDBOX=none."""
    n = sizes.sandbox_runs
    lat = sandbox_cost.run_e2e(work, n)
    p50, p99 = measure.quantiles(lat["bwrap"])
    b50, b99 = measure.quantiles(lat["none"])
    rows.append(
        Row(
            f"run end to end (word-count), sandboxed vs FLOOM_SANDBOX=none, p50 ({n} runs each)",
            ms(p50),
            ms(b50),
            f"+{ms(p50 - b50)}",
            f"p99 {ms(p99)} vs {ms(b99)}; one run on each in turn; aim <= 25 ms added",
        )
    )
    bare = sandbox_cost.bare_start(max(n, 10))
    p50, _ = measure.quantiles(bare["bwrap"])
    b50, _ = measure.quantiles(bare["none"])
    rows.append(
        Row("  `/bin/true` confined vs plain, p50", ms(p50), ms(b50), f"+{ms(p50 - b50)}",
            "bwrap with the run's namespaces and mounts, setpriv (as root), prlimit, sh")
    )


def bench_celery(sizes: Sizes, work: Path, rows: list[Row]) -> None:
    """Runs/s and trigger -> process started: local executor vs Celery with 1 and 2 executors."""
    results = celery_cost.run(work, sizes.celery_runs, sizes.celery_latency, sizes.run_clients)
    local = results[0]
    for r in results:
        rows.append(Row(
            f"runs/s and trigger -> started p50, {r.label} ({sizes.celery_runs} runs, "
            f"{sizes.run_clients} clients)",
            f"{r.rate:.1f}/s", ms(r.start_p50),
            "" if r is local else f"{r.rate / local.rate:.2f}x runs/s, "
                                  f"+{ms(r.start_p50 - local.start_p50)} to start",
            f"start p99 {ms(r.start_p99)}; {celery_cost.SLOTS} runs at once per executor"))


def bench_startup(sizes: Sizes, work: Path, rows: list[Row]) -> None:
    """Start-up with `run_records` records on floom/runs: cold (no index cache: the newest
    days are read before the server answers, the rest after), then a restart (the newest days
    again, the rest from the index cache saved at the first one's shutdown)."""
    data = work / "startup-data"
    fixtures.create_workspaces(data, ["default"])
    built = time.perf_counter()
    fixtures.add_run_records(data / "workspaces" / "default", sizes.run_records)
    print(
        f"{sizes.run_records} run records written in {time.perf_counter() - built:.1f} s",
        flush=True,
    )
    count = f"{sizes.run_records:,}"
    for label in ("cold", "restart"):
        server, healthy, listed = measure.startup_seconds(
            lambda label=label: spawn("floom-git", floom_args(data), work / f"start-{label}.log"),
            sizes.run_records,
        )
        try:
            if label == "cold":
                measure.index_saved(data, server, sizes.run_records)  # the restart's cache
        finally:
            server.stop()  # also when the cache was not saved: no server outlives the bench
        rows.append(
            Row(
                f"start-up, {count} run records ({label}): /healthz",
                f"{healthy:.2f} s",
                comparison=f"runs listed {listed:.2f} s",
                note=(
                    "spawn -> GET /runs?limit=1 with X-Total-Count right; aim <= 1.5 s"
                    if label == "cold"
                    else "index cache from the last run"
                ),
            )
        )


def bench_auth(quick: bool, rows: list[Row]) -> None:
    """Token authentication against an unauthenticated request (its own server; aim < 5 %)."""
    for name, value in auth_overhead.run(quick):
        rows.append(Row(name, value, note="aim < 5 % of a request" if "in process" in name else ""))


def bench_agent(quick: bool, rows: list[Row]) -> None:
    """The agent loop's own time per step against the fake LLM server (in process)."""
    for name, own, provider in agent_loop.run(quick):
        rows.append(Row(name, own, comparison=provider,
                        note=f"aim <= {agent_loop.AIM_MS:g} ms beyond the provider"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a guarded ratio is below its floor "
                             "(benchmarks/floors.py)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    for key, value in (("NAME", "floom-bench"), ("EMAIL", "bench@floom.local")):
        os.environ.setdefault(f"GIT_AUTHOR_{key}", value)
        os.environ.setdefault(f"GIT_COMMITTER_{key}", value)
    work = Path(tempfile.mkdtemp(prefix="floom-bench-"))
    data = work / "data"
    data_on = measure.filesystem(work)
    started = time.perf_counter()
    rows: list[Row] = []
    ratios: Ratios = {}
    servers: list[Server] = []
    try:
        print(f"machine: {machine(data_on)}", flush=True)
        print(f"preparing data in {work} ...", flush=True)
        fixtures.create_workspaces(data, ["default", "bench-writes", "bench-clone"])
        fixtures.add_history(data / "workspaces" / "default", sizes.history, sizes.workers)
        fixtures.add_history(data / "workspaces" / "bench-clone", sizes.clone_history)
        baseline_repo = work / "baseline"
        fixtures.git(
            work, "clone", "-q", str(data / "workspaces" / "bench-writes"), str(baseline_repo)
        )
        print(f"data ready in {time.perf_counter() - started:.1f} s; starting servers", flush=True)
        floom = start_floom(data, work / "floom.log")
        servers.append(floom)
        baseline = start_baseline(baseline_repo, work / "baseline.log")
        servers.append(baseline)
        folders = {"floom": data / "workspaces" / "bench-writes" / ".git",
                   "baseline": baseline_repo / ".git"}
        bench_writes(sizes, floom, baseline, rows, ratios, folders)
        baseline.stop()
        check_writes(data, sizes, rows)
        bench_group_commit(sizes, work, rows)
        bench_reads(sizes, floom, rows)
        bench_git(sizes, floom, data, work, rows, ratios)
        bench_live(sizes, floom, data, rows)
        bench_runs(sizes, floom, data, rows)
        floom.stop()
        bench_sandbox(sizes, work, rows)
        bench_celery(sizes, work, rows)
        bench_startup(sizes, work, rows)
        bench_auth(args.quick, rows)
        bench_agent(args.quick, rows)
    except Exception:
        for server in servers:
            print(f"--- {server.name} log ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(rows)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; machine: {machine(data_on)}")
    return check(ratios) if args.check else 0


def check(ratios: Ratios) -> int:
    """Print the guard's verdicts; 1 when a ratio is below its floor by more than its noise."""
    verdicts = floors.judge(ratios)
    print("\nregression guard (benchmarks/floors.py):")
    for v in verdicts:
        print(f"  {'ok  ' if v.ok else 'FAIL'} {v.name}: median {v.median:.2f} +- {v.noise:.2f} "
              f"(half the rounds' spread), floor {v.floor:.2f} - {floors.FLOORS[v.name].what}")
    return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())

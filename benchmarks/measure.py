"""The individual measurements: each drives a running server with real HTTP clients or the real
git client and returns plain numbers (or None when the feature is not available)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from benchmarks.fixtures import TARGET, git
from benchmarks.server import HEADERS, Server

WAIT = 20.0  # generous deadline for anything asynchronous (a watcher, a run starting)
ROUNDS = 4  # methods compared side by side alternate this many times


def quantiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of `samples`."""
    if len(samples) == 1:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[98]


async def _clients(
    n_clients: int,
    total: int,
    one: Callable[[aiohttp.ClientSession, int], Awaitable[None]],
    offset: int = 0,
) -> float:
    """Run calls `offset`..`offset + total - 1` of `one` spread over `n_clients` sessions;
    return the seconds it took."""
    counter = itertools.count(offset)
    sessions = [aiohttp.ClientSession(headers=HEADERS) for _ in range(n_clients)]

    async def client(session: aiohttp.ClientSession) -> None:
        while (i := next(counter)) < offset + total:
            await one(session, i)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(client(s) for s in sessions))
        return time.perf_counter() - start
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


def filesystem(path: Path) -> str:
    """What holds `path`, e.g. "ext4 without a journal (vda)". It can move a write's CPU: on
    ext4 without a journal, allocating an inode steps past every inode freed nearby in the last
    minutes (one VM, same code: 2.2 ms per write in a new top-level folder, 2.8 in /tmp just
    after other runs had removed their data there)."""
    dev = os.stat(path).st_dev
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    kind = "unknown file system"
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[2] == wanted and " - " in line:
                kind = line.split(" - ", 1)[1].split()[0]
                break
        name = os.path.basename(os.readlink(f"/sys/dev/block/{wanted}"))
    except OSError:
        return kind
    if kind in ("ext3", "ext4"):
        journal = any(entry.startswith(f"{name}-") for entry in _listdir("/proc/fs/jbd2"))
        return f"{kind} {'with' if journal else 'without'} a journal ({name})"
    return f"{kind} ({name})"


def file_creation_us(folder: Path, n: int = 64) -> float:
    """Median microseconds to create an empty file in a new folder `folder` (its files stay:
    removing them would make the next creations there dearer). On ext4 without a journal this
    is what the inodes freed nearby in the last minutes cost every new file there: 5-10 us on
    a quiet disk, hundreds after a test suite or an earlier bench removed its data nearby."""
    folder.mkdir(parents=True)
    took = []
    for i in range(n):
        start = time.perf_counter()
        fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        took.append(time.perf_counter() - start)
        os.close(fd)
    return statistics.median(took) * 1e6


def _listdir(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by process `pid` and its waited-for children (its git
    subprocesses); None where /proc is missing. On a shared machine CPU per operation is far
    steadier than wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


WARM_WRITES = 20


def warm_and_quiet(server: Server, ws: str = "bench-writes", quiet_for: float = 0.5,
                   deadline: float = 15.0) -> None:
    """Make a server ready for a measure of its writes: WARM_WRITES writes (a first write
    loads what later ones reuse), then wait until it has used under 2 % of a CPU for
    `quiet_for` seconds (start-up work after /healthz answers, upkeep). Without this, a
    server with 100,000 commits in another workspace charged its start-up to the first
    writes measured: 3.0 against 2.1 ms per write at 1 client."""
    write_seconds(server, 1, WARM_WRITES, "warm", ws=ws)
    end = time.monotonic() + deadline
    before = cpu_seconds(server.proc.pid)
    while time.monotonic() < end:
        time.sleep(quiet_for)
        after = cpu_seconds(server.proc.pid)
        if before is None or after is None or after - before < 0.02 * quiet_for:
            return
        before = after


def write_seconds(
    server: Server, n_clients: int, total: int, tag: str, offset: int = 0, ws: str = "bench-writes"
) -> float:
    """Seconds to PUT `total` distinct context files with `n_clients` concurrent clients."""

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        url = f"{server.base}/api/contexts/company/files/{tag}/f{i:05d}.md"
        body = f"# note {i}\n\nwritten by the benchmark\n".encode()
        headers = {"x-workeros-workspace": ws, "content-type": "text/markdown"}
        async with session.put(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"PUT {url}: {resp.status} {await resp.text()}")
            await resp.read()

    return asyncio.run(_clients(n_clients, total, one, offset))


def gets_per_second(server: Server, path: str, n_clients: int, total: int) -> float:
    async def one(session: aiohttp.ClientSession, i: int) -> None:
        async with session.get(server.base + path) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status} {await resp.text()}")
            await resp.read()

    return total / asyncio.run(_clients(n_clients, total, one))


def get_latencies(server: Server, path: str, total: int,
                  write_before: str | None = None) -> list[float]:
    """Sequential GETs of `path`; seconds per request. With `write_before` (a workspace), each
    GET comes after a context file PUT there (not timed)."""

    async def run() -> list[float]:
        out = []
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            for i in range(total):
                if write_before is not None:
                    url = f"{server.base}/api/contexts/company/files/between/f{i:05d}.md"
                    headers = {"x-workeros-workspace": write_before,
                               "content-type": "text/markdown"}
                    async with session.put(url, data=b"# between reads\n", headers=headers) as w:
                        if w.status != 200:
                            raise RuntimeError(f"PUT {url}: {w.status} {await w.text()}")
                start = time.perf_counter()
                async with session.get(server.base + path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"GET {path}: {resp.status}")
                out.append(time.perf_counter() - start)
        return out

    return asyncio.run(run())


def git_http_available(server: Server, ws_id: str) -> bool:
    async def probe() -> bool:
        url = f"{server.base}/git/{ws_id}.git/info/refs?service=git-upload-pack"
        auth = aiohttp.BasicAuth("bench", HEADERS["x-floom-secret"])
        async with aiohttp.ClientSession() as session, session.get(url, auth=auth) as resp:
            return resp.status == 200 and "git-upload-pack" in resp.content_type

    return asyncio.run(probe())


def clone_seconds(url: str, repeats: int) -> float:
    """Median wall time of `git clone --bare` from `url`."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="floom-bench-clone-") as tmp:
            start = time.perf_counter()
            subprocess.run(
                ["git", "clone", "-q", "--bare", url, str(Path(tmp) / "c.git")],
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def push_checkout(url: str, checkout: Path) -> Path:
    """A clone of `url` to push from."""
    shutil.rmtree(checkout, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", url, str(checkout)], check=True, capture_output=True)
    return checkout


def push_latencies(checkout: Path, pushes: int, first: int = 0) -> list[float]:
    """Commit one worker edit in `checkout` and `git push` it, `pushes` times; seconds each."""
    out = []
    for i in range(first, first + pushes):
        path = checkout / "workers" / "word-count" / "notes.md"
        path.write_text(f"push {i}\n")
        git(checkout, "add", "-A")
        git(checkout, "commit", "-q", "-m", f"bench push {i}")
        start = time.perf_counter()
        git(checkout, "push", "-q", "origin", "main")
        out.append(time.perf_counter() - start)
    return out


def edit_to_visible(server: Server, ws_path: Path, edits: int) -> list[float] | None:
    """Edit TARGET's worker.yml on disk; seconds until GET /workers/TARGET shows the new
    description. None when the edit never shows (no watcher running)."""
    manifest = ws_path / "workers" / TARGET / "worker.yml"

    async def run() -> list[float] | None:
        out = []
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            for i in range(edits):
                wanted = f"Edited on disk {i} ({os.getpid()})"
                lines = [
                    f"description: {wanted}" if ln.startswith("description:") else ln
                    for ln in manifest.read_text().splitlines()
                ]
                start = time.perf_counter()
                manifest.write_text("\n".join(lines) + "\n")
                while time.perf_counter() - start < WAIT:
                    async with session.get(f"{server.base}/api/workers/{TARGET}") as resp:
                        if resp.status == 200 and (await resp.json()).get("description") == wanted:
                            break
                    await asyncio.sleep(0.01)
                else:
                    return None
                out.append(time.perf_counter() - start)
        return out

    return asyncio.run(run())


def run_start_latencies(server: Server, runs: int) -> list[float] | None:
    """POST /workers/word-count/runs; seconds until the run is no longer `queued`.
    None when the server has no run engine yet."""

    async def run() -> list[float] | None:
        out = []
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            for _ in range(runs):
                start = time.perf_counter()
                async with session.post(
                    f"{server.base}/api/workers/word-count/runs",
                    json={"inputs": {"text": "one two three"}},
                ) as resp:
                    if resp.status in (404, 405):
                        return None
                    if resp.status >= 300:
                        raise RuntimeError(f"start run: {resp.status} {await resp.text()}")
                    run_id = (await resp.json()).get("run_id") or ""
                status = "queued"
                while status == "queued" and time.perf_counter() - start < WAIT:
                    async with session.get(f"{server.base}/api/runs/{run_id}") as resp:
                        status = (await resp.json()).get("status", "queued")
                    if status == "queued":
                        await asyncio.sleep(0.005)
                if status == "queued":
                    return None
                out.append(time.perf_counter() - start)
        return out

    return asyncio.run(run())


def group_commit(work: Path, writes: int, concurrency: int) -> dict[str, float]:
    """In process, no HTTP: writes/s through the Writer one at a time, with `concurrency`
    concurrent writers (group commit: a chain of commits per batch), and the same writes
    squashed into one commit per `concurrency` changes (the alternative we did not ship)."""
    from floom_git.config import DEFAULT_TEMPLATE_DIR
    from floom_git.services.workspaces import template_files
    from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
    from floom_git.storage.writer import Writer

    sig = signature("bench", "bench@floom.local")
    files = template_files(DEFAULT_TEMPLATE_DIR, "bench")

    def fresh(name: str) -> WorkspaceRepo:
        return WorkspaceRepo.create(work / f"group-{name}", files, "init", sig)

    def change(i: int) -> dict[str, bytes | None]:
        return {f"contexts/company/g/f{i:05d}.md": f"# note {i}\n".encode()}

    writers = {
        "serial": (Writer(fresh("serial")), 1),
        "chain": (Writer(fresh("chain")), concurrency),
    }
    squash_repo = fresh("squash")
    spent = dict.fromkeys(("serial", "chain", "squash"), 0.0)
    cpu = dict.fromkeys(("serial", "chain", "squash"), 0.0)

    async def through_writer(name: str, first: int, count: int) -> None:
        writer, clients = writers[name]
        counter = itertools.count(first)

        async def client() -> None:
            while (i := next(counter)) < first + count:
                await writer.write(lambda r, i=i: Changeset(change(i), f"note {i}"), sig)

        start, cpu_start = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client() for _ in range(clients)))
        spent[name] += time.perf_counter() - start
        cpu[name] += time.process_time() - cpu_start

    # Alternate in rounds so a load spike on a shared machine hits every method alike.
    per_round = max(concurrency, writes // ROUNDS)
    for first in range(0, writes, per_round):
        count = min(per_round, writes - first)
        asyncio.run(through_writer("serial", first, count))
        asyncio.run(through_writer("chain", first, count))
        start, cpu_start = time.perf_counter(), time.process_time()
        for group in range(first, first + count, concurrency):
            merged: dict[str, bytes | None] = {}
            for i in range(group, min(first + count, group + concurrency)):
                merged.update(change(i))
            squash_repo.commit(Changeset(merged, f"notes {group}.."), sig)
        spent["squash"] += time.perf_counter() - start
        cpu["squash"] += time.process_time() - cpu_start
    chain_writer = writers["chain"][0]
    out = {name: writes / seconds for name, seconds in spent.items()}
    out.update({f"{name}_cpu": seconds / writes for name, seconds in cpu.items()})
    out["batch"] = chain_writer.commits / max(1, chain_writer.batches)
    return out


# -- run engine -------------------------------------------------------------------------------
RUN_URL = "/api/workers/word-count/runs"
RUN_BODY = {"inputs": {"text": "a b c"}}


def _iso_seconds(value: str) -> float:
    """Epoch seconds of the server's ISO timestamps (`2025-01-01T00:00:00.123Z`)."""
    import datetime as dt

    return dt.datetime.fromisoformat(value).timestamp()


async def _trigger(session: aiohttp.ClientSession, server: Server) -> str:
    async with session.post(server.base + RUN_URL, json=RUN_BODY) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"start run: {resp.status} {await resp.text()}")
        return str((await resp.json())["run_id"])


async def _until_closed(session: aiohttp.ClientSession, server: Server, run_id: str) -> str:
    """Follow GET /runs/{id}/events (SSE) to its `close` event; the run's final status."""
    import json

    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with session.get(f"{server.base}/api/runs/{run_id}/events", timeout=timeout) as resp:
        if resp.status != 200:
            raise RuntimeError(f"events of {run_id}: {resp.status} {await resp.text()}")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data.get("type") == "close":
                    return str(data.get("status"))
    raise RuntimeError(f"events of {run_id} ended without a close event")


def run_latencies(server: Server, runs: int) -> dict[str, list[float]] | None:
    """`runs` word-count runs one after another. For each: seconds from the client sending the
    POST to the executor's "Started `…` (pid …)" log line (server clock, ms resolution; same
    machine), from the record's created_at to that line, and from the POST to the SSE `close`
    event of a `completed` run (end to end). None when the server has no run engine."""

    async def run() -> dict[str, list[float]] | None:
        out: dict[str, list[float]] = {"to_start": [], "created_to_start": [], "e2e": []}
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            async with session.post(server.base + RUN_URL, json=RUN_BODY) as resp:
                if resp.status in (404, 405):
                    return None  # (this warm-up run also fills the worker's environment)
                run_id = str((await resp.json())["run_id"])
            await _until_closed(session, server, run_id)
            for _ in range(runs):
                wall, start = time.time(), time.perf_counter()
                run_id = await _trigger(session, server)
                status = await _until_closed(session, server, run_id)
                out["e2e"].append(time.perf_counter() - start)
                if status != "completed":
                    raise RuntimeError(f"run {run_id} ended {status}")
                async with session.get(f"{server.base}/api/runs/{run_id}") as resp:
                    detail = await resp.json()
                started = [
                    ln["timestamp"]
                    for ln in detail.get("logs") or []
                    if ln.get("message", "").startswith("Started ")
                ]
                begun = _iso_seconds(started[0] if started else detail["started_at"])
                out["to_start"].append(max(0.0, begun - wall))
                out["created_to_start"].append(begun - _iso_seconds(detail["created_at"]))
        return out

    return asyncio.run(run())


def run_throughput(server: Server, repo: Path, total: int, clients: int) -> dict[str, float]:
    """`clients` clients each trigger a run and follow it to its end, `total` runs in all.
    Returns runs/s until every run ended, then the seconds until every one of them has its
    final (`completed`) run.json on floom/runs, and how many floom/runs commits that took."""
    ids: list[str] = []
    statuses: list[str] = []
    before = int(git(repo, "rev-list", "--count", "floom/runs") or 0)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        run_id = await _trigger(session, server)
        ids.append(run_id)
        statuses.append(await _until_closed(session, server, run_id))

    seconds = asyncio.run(_clients(clients, total, one))
    ended = time.perf_counter()
    wanted = set(ids)
    committed = 0
    while time.perf_counter() - ended < WAIT:
        listing = git(repo, "ls-tree", "-r", "--name-only", "floom/runs", "--", "runs")
        dirs = {p.split("/")[-2] for p in listing.splitlines() if p.endswith("/run.json")}
        if wanted <= dirs:
            paths = [p for p in listing.splitlines() if p.split("/")[-2] in wanted]
            done = [
                p
                for p in paths
                if p.endswith("/run.json")
                and '"status": "completed"' in git(repo, "show", f"floom/runs:{p}")
            ]
            committed = len(done)
            if committed == len(wanted):
                break
        time.sleep(0.05)
    return {
        "rate": total / seconds,
        "completed": float(statuses.count("completed")),
        "committed": float(committed),
        "commit_lag": time.perf_counter() - ended,
        "commits": float(int(git(repo, "rev-list", "--count", "floom/runs")) - before),
    }


def startup_seconds(spawn: Callable[[], Server], expected: int) -> tuple[Server, float, float]:
    """Spawn a server; seconds from spawn until /healthz answers 200 and until
    GET /api/runs?limit=1 reports X-Total-Count == `expected`. Returns the running server."""
    start = time.perf_counter()
    server = spawn()

    async def run() -> tuple[float, float]:
        healthy = listed = 0.0
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            while time.perf_counter() - start < 120:
                if server.proc.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{server.log_tail()}")
                try:
                    if not healthy:
                        async with session.get(server.base + "/healthz") as resp:
                            if resp.status == 200:
                                healthy = time.perf_counter() - start
                    if healthy:
                        async with session.get(server.base + "/api/runs?limit=1") as resp:
                            await resp.read()
                            if resp.headers.get("X-Total-Count") == str(expected):
                                listed = time.perf_counter() - start
                                return healthy, listed
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.01)
        raise RuntimeError(f"X-Total-Count never reached {expected}:\n{server.log_tail()}")

    try:
        healthy, listed = asyncio.run(run())
    except BaseException:
        server.stop()
        raise
    return server, healthy, listed


def index_saved(data: Path, server: Server, records: int) -> None:
    """Stop `server` once its run index holds all `records` (a page that needs every one), and
    check it saved the index cache (after a start that read records from floom/runs, or at
    shutdown): what a restart starts from."""

    async def whole() -> None:
        async with aiohttp.ClientSession(headers=HEADERS) as session:
            url = f"{server.base}/api/runs?worker_id=word-count&offset={records - 1}"
            async with session.get(url) as resp:  # answers once every record is in
                if resp.status != 200 or len(await resp.json()) != 1:
                    raise RuntimeError(f"GET {url}: {resp.status} {await resp.text()}")

    asyncio.run(whole())
    server.stop()
    if not list((data / "spool").glob("*/index.cache")):
        raise RuntimeError(f"the run index was never saved:\n{server.log_tail()}")

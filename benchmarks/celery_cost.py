"""What executing runs on Celery costs and gives, on one machine: runs/s and trigger -> process
started with the local executor, then with FLOOM_EXECUTOR=celery and 1 and 2 `floom-git
executor` processes (a redis-server on a loopback port as the broker; 4 runs at once per
executor, as FLOOM_MAX_CONCURRENT_RUNS locally)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import fixtures, measure
from benchmarks.server import Server, server_env, start_floom
from floom_git.runtime.remote_wire import new_key

SLOTS = 4  # runs at once: the local default, and per executor


@dataclass
class Result:
    label: str
    rate: float
    start_p50: float
    start_p99: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis(work: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save",
                             "", "--appendonly", "no", "--dir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start (Debian package redis-server)")


def _executor(work: Path, n: int, env: dict[str, str]) -> subprocess.Popen:
    log = (work / f"executor-{n}.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "floom-git"), "executor", "--data-dir",
         str(work / f"executor-{n}"), "--concurrency", str(SLOTS)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while b" ready." not in (work / f"executor-{n}.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"executor {n} did not start:\n"
                               + (work / f"executor-{n}.log").read_text()[-2000:])
        time.sleep(0.05)
    return proc


def _measure(label: str, server: Server, data: Path, runs: int, latency_runs: int,
             clients: int) -> Result:
    lat = measure.run_latencies(server, latency_runs)
    assert lat is not None
    p50, p99 = measure.quantiles(lat["to_start"])
    r = measure.run_throughput(server, data / "workspaces" / "default", runs, clients)
    if r["committed"] != runs:
        raise RuntimeError(f"{label}: {r['committed']:.0f}/{runs} runs committed")
    return Result(label, r["rate"], p50, p99)


def run(work: Path, runs: int, latency_runs: int, clients: int) -> list[Result]:
    """Local, then Celery with 1 and 2 executors; each on a fresh server and data dir."""
    out: list[Result] = []
    data = work / "celery-local"
    fixtures.create_workspaces(data, ["default"])
    server = start_floom(data, work / "celery-local.log")
    try:
        out.append(_measure("local executor", server, data, runs, latency_runs, clients))
    finally:
        server.stop()
    redis, broker = _redis(work)
    key = new_key()
    common = {"FLOOM_CELERY_BROKER": broker, "FLOOM_EXECUTOR_KEY": key,
              "FLOOM_CELERY_QUEUE": "bench", "FLOOM_LOG_FORMAT": "text"}
    try:
        for count in (1, 2):
            data = work / f"celery-{count}"
            fixtures.create_workspaces(data, ["default"])
            folder = work / f"celery-{count}-executors"
            folder.mkdir()
            executors = [_executor(folder, n, server_env(common)) for n in range(count)]
            server = start_floom(data, work / f"celery-{count}.log", server_env({
                **common, "FLOOM_EXECUTOR": "celery", "FLOOM_MAX_CONCURRENT_RUNS": "64"}))
            try:
                label = f"Celery, {count} executor process{'es' if count > 1 else ''}"
                out.append(_measure(label, server, data, runs, latency_runs, clients))
            finally:
                server.stop()
                for proc in executors:
                    proc.send_signal(signal.SIGQUIT)
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    finally:
        redis.terminate()
        redis.wait(10)
    return out

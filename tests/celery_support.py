"""Real services for the Celery executor tests: redis-server on a free loopback port, `floom-git
executor` worker processes, and a home node (the real server, FLOOM_EXECUTOR=celery) on a port
the executors reach it at."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiohttp.test_utils import TestServer

from floom_git.config import Settings
from floom_git.http.app import create_app
from tests.conftest import AUTH, SECRET

FLOOM_GIT = str(Path(sys.executable).parent / "floom-git")
READY_SECONDS = 60.0
CLAIMED = re.compile(r"Claimed by executor [^:]+:(\d+):")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    """redis-server on a free loopback port, nothing persisted (Debian package redis-server)."""

    def __init__(self, folder: Path) -> None:
        import redis

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.client = redis.Redis(port=self.port)
        end = time.monotonic() + 20
        while True:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("redis-server did not start (is the Debian package "
                                       "redis-server installed? scripts/install installs it)"
                                       ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)


class Executors:
    """`floom-git executor` processes on one queue, each with its own data dir and log file."""

    def __init__(self, folder: Path, broker: str, key: str, queue: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("FLOOM_", "WORKEROS_"))
        }
        self.env.update(FLOOM_CELERY_BROKER=broker, FLOOM_EXECUTOR_KEY=key,
                        FLOOM_CELERY_QUEUE=queue, FLOOM_LOG_FORMAT="text",
                        FLOOM_EXECUTOR_LOST_SECONDS="5")
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, Path] = {}

    def start(self, count: int = 1, concurrency: int = 4) -> list[int]:
        started = []
        for _ in range(count):
            n = len(self.logs)
            log = self.folder / f"executor-{n}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [FLOOM_GIT, "executor", "--data-dir", str(self.folder / f"executor-{n}"),
                     "--concurrency", str(concurrency), "--name", f"test-{n}@%h"],
                    env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs[proc.pid] = proc
            self.logs[proc.pid] = log
            started.append(proc.pid)
        for pid in started:
            self._ready(pid)
        return started

    def _ready(self, pid: int) -> None:
        end = time.monotonic() + READY_SECONDS
        while b" ready." not in self.logs[pid].read_bytes():
            if self.procs[pid].poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"executor {pid} did not start:\n"
                                   + self.logs[pid].read_text()[-3000:])
            time.sleep(0.05)

    def kill(self, pid: int) -> None:
        """SIGKILL the executor process (its sandboxes die with it: --die-with-parent)."""
        os.kill(pid, signal.SIGKILL)
        self.procs.pop(pid).wait(10)

    def stop(self) -> None:
        for pid, proc in list(self.procs.items()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGQUIT)  # cold shutdown: running tasks are not awaited
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()


def home_settings(data: Path, broker: str, key: str, queue: str, port: int,
                  **extra: object) -> Settings:
    values: dict[str, object] = dict(
        data_dir=data, secret=SECRET, watch=False, argon2_profile="CHEAPEST",
        rate_list_per_minute=0, rate_auth_per_minute=0, rate_login_per_minute=0,
        rate_auth_fail_per_minute=0, executor="celery", celery_broker=broker,
        celery_queue=queue, executor_key=key, home_url=f"http://127.0.0.1:{port}",
        executor_heartbeat_seconds=0.5, max_concurrent_runs=64,
        # Generous: a busy machine can hold a heartbeat back; the tests that kill an executor
        # pass their own, shorter window.
        executor_lost_seconds=30.0)
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def home_node(aiohttp_client, settings: Settings,  # type: ignore[no-untyped-def]
                    port: int | None = None):
    """The real server on `port` (default: the one its settings name), as a client sending
    the shared secret."""
    port = port or int(settings.executor_url.rsplit(":", 1)[1])
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    return await aiohttp_client(server, headers=AUTH)


def claimers(logs: list[dict]) -> list[int]:
    """The executor pids that claimed the run, from its log lines."""
    return [int(m.group(1)) for line in logs if (m := CLAIMED.search(line["message"]))]

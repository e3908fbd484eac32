"""Start and stop the servers the benchmark talks to: floom-git itself and the subprocess-git
baseline, each as a real subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

SECRET = "bench-secret-0123456789"
HEADERS = {"x-floom-secret": SECRET}
READY_DEADLINE = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOOM_", "WORKEROS_"))}
    env.update(
        {
            "FLOOM_SECRET": SECRET,
            "WORKEROS_SHARED_SECRET_ROLE": "admin",  # /health/details is admin-only
            "FLOOM_RATE_LIST_PER_MINUTE": "0",  # measure the server, not its rate limit
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def git_url(self, ws_id: str) -> str:
        return f"http://bench:{SECRET}@127.0.0.1:{self.port}/git/{ws_id}.git"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Server:
    """Run `python <args> --port P` in `cwd` (default: this checkout, whose floom_git it then
    imports); do not wait for it."""
    port = free_port()
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, *args, "--port", str(port)],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env or server_env(),
        cwd=cwd or Path(__file__).resolve().parent.parent,
    )
    return Server(name, proc, port, log)


def start(name: str, args: list[str], log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Server:
    """Run `python <args> --port P` and wait until /healthz answers."""
    server = spawn(name, args, log, env, cwd)
    try:
        asyncio.run(_wait_ready(server))
    except BaseException:
        server.stop()
        raise
    return server


def floom_args(data_dir: Path) -> list[str]:
    return ["-m", "floom_git", "serve", "--host", "127.0.0.1", "--data-dir", str(data_dir)]


def start_floom(data_dir: Path, log: Path, env: dict[str, str] | None = None) -> Server:
    return start("floom-git", floom_args(data_dir), log, env)


def start_baseline(repo: Path, log: Path) -> Server:
    return start("baseline", ["-m", "benchmarks.baseline_server", "--repo", str(repo)], log)


async def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
            try:
                async with session.get(server.base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} did not become ready:\n{server.log_tail()}")

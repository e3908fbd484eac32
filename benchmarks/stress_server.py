"""The server under stress: `python -m floom_git serve` as a subprocess in its own process group
(so a crash can kill it and its git children at once), readiness, SIGKILL, and what /proc says
about it (resident memory, open file descriptors)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
SECRET = "stress-secret-0123456789"
HEADERS = {"x-floom-secret": SECRET}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The server's whole environment: none of the caller's FLOOM_/WORKEROS_ settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOOM_", "WORKEROS_"))}
    env.update({
        "FLOOM_SECRET": SECRET,
        "WORKEROS_SHARED_SECRET_ROLE": "admin",  # /metrics and /health/details are admin-only
        "FLOOM_RATE_LIST_PER_MINUTE": "0",
        "FLOOM_RATE_AUTH_PER_MINUTE": "0",
        "FLOOM_ARGON2_PROFILE": "CHEAPEST",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    """One server on `data_dir` and `port`; start() may be called again after a kill."""

    data_dir: Path
    log: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=server_env)
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def git_url(self, ws_id: str = "default") -> str:
        return f"http://x:{SECRET}@127.0.0.1:{self.port}/git/{ws_id}.git"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as fh:
            fh.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "floom_git", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                start_new_session=True,
            )

    async def wait_ready(self, deadline: float = 60.0) -> float:
        """Seconds until /healthz answered 200; RuntimeError if it exits or never answers."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"server exited during start-up:\n{self.log_tail()}")
                try:
                    async with session.get(self.base + "/healthz") as resp:
                        if resp.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"server did not answer /healthz within {deadline:.0f} s:\n"
                           f"{self.log_tail()}")

    def kill(self, group: bool = True) -> None:
        """SIGKILL the server and everything in its process group (a crash, not a shutdown);
        with group=False the server alone, leaving its git children running as orphans."""
        if self.proc is None or self.proc.poll() is not None:
            return  # already gone: its group id may belong to someone else by now
        try:
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM, as systemd or docker send); SIGKILL if it does not end in
        time."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))

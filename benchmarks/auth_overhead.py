"""What authenticating a request with an API token costs: the real server as a subprocess, one
client alternating an unauthenticated request (GET /healthz) and the same kind of trivial request
behind a token (GET /api/system/info), plus the in-process cost of resolving and authorizing a
token, set against the latency of the unauthenticated request.
`python -m benchmarks.auth_overhead [--quick]`; aim: under 5 % overhead."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from floom_git.config import Settings
from floom_git.services.auth import Authenticator
from floom_git.services.identity import Identity
from floom_git.services.workspaces import WorkspaceManager, read_uid

SECRET = "bench-secret-0123456789"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mint(data: Path) -> str:
    """A member of `default` (created here, so the membership can name its internal id)."""
    uid = WorkspaceManager(Settings(data_dir=data, watch=False)).create_sync("default").uid
    identity = Identity(data / "system", password_profile="CHEAPEST")
    user = identity.users.create("bench", email="bench@example.com")
    identity.members.add(uid, user.id, "member")
    value, _ = identity.tokens.mint(user_id=user.id, kind="personal", name="bench")
    identity.close()
    return value


def in_process_us(data: Path, token: str, calls: int) -> float:
    """Microseconds to authenticate and authorize one token outside HTTP."""
    identity = Identity(data / "system", password_profile="CHEAPEST")
    uid = read_uid(data / "workspaces" / "default")
    auth = Authenticator(SECRET, identity=identity, workspace_uid={"default": uid}.get)
    headers = {"x-floom-token": token}
    best = float("inf")
    for _ in range(5):  # the best of five batches: what it costs when the machine lets it run
        start = time.perf_counter()
        for _ in range(calls):
            auth.authorize(auth.authenticate(headers), "default", "viewer")
        best = min(best, time.perf_counter() - start)
    identity.close()
    return best / calls * 1e6


async def over_http(base: str, token: str, n: int) -> dict[str, float]:
    """Median latency (s) per case; cases alternate request by request, so load and drift on a
    shared machine hit every case alike."""
    cases = {
        "GET /healthz, no credential": (f"{base}/healthz", {}),
        "GET /api/system/info, token": (f"{base}/api/system/info", {"x-floom-token": token}),
        "GET /api/system/info, shared secret": (
            f"{base}/api/system/info",
            {"x-floom-secret": SECRET},
        ),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    async with aiohttp.ClientSession() as session:
        for i in range(n + n // 10):
            for name, (url, headers) in cases.items():
                start = time.perf_counter()
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url} answered {resp.status}")
                if i >= n // 10:  # the first tenth warms up
                    samples[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def run(quick: bool) -> list[tuple[str, str]]:
    """(measure, value) rows."""
    work = Path(tempfile.mkdtemp(prefix="floom-bench-auth-"))
    data = work / "data"
    token = _mint(data)
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOOM_", "WORKEROS_"))}
    env.update({"FLOOM_SECRET": SECRET, "FLOOM_WATCH": "0", "FLOOM_RATE_LIST_PER_MINUTE": "0",
                "FLOOM_RATE_AUTH_PER_MINUTE": "0", "FLOOM_SCHEDULER": "0"})
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "floom_git", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--data-dir", str(data)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_ready(base, proc))
        rates = asyncio.run(over_http(base, token, 300 if quick else 3000))
        micro = in_process_us(data, token, 2_000 if quick else 20_000)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    plain = rates["GET /healthz, no credential"]
    rows = [(f"{name}, median", f"{lat * 1e6:.0f} µs") for name, lat in rates.items()]
    tok = rates["GET /api/system/info, token"]
    rows.append(
        ("token vs no credential over HTTP (upper bound)", f"{(tok / plain - 1) * 100:+.1f} %")
    )
    share = micro / (plain * 1e6) * 100
    rows.append(("token resolve + authorize, in process",
                 f"{micro:.1f} µs = {share:.1f} % of an unauthenticated request"))
    return rows


async def _ready(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("floom-git exited early")
            try:
                async with session.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("floom-git did not become ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.auth_overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for name, value in run(args.quick):
        print(f"| {name:<50} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What confinement costs: a trivial run end to end on two servers side by side, one with the
default sandbox (bubblewrap) and one with FLOOM_SANDBOX=none, in alternating rounds; and the bare
start of a confined `/bin/true` against a plain one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import aiohttp

from benchmarks import fixtures, measure
from benchmarks.server import HEADERS, Server, server_env, start_floom
from floom_git.runtime.sandbox import UNPRIVILEGED_PATH, Limits, Sandbox, Spec, memfd_with


def run_e2e(work: Path, runs: int) -> dict[str, list[float]]:
    """End-to-end seconds of `runs` word-count runs per server (POST -> SSE close `completed`),
    one on each server in turn, so load from other programs hits both alike."""
    servers: dict[str, Server] = {}
    try:
        for mode in ("bwrap", "none"):
            data = work / f"sandbox-{mode}"
            fixtures.create_workspaces(data, ["default"])
            servers[mode] = start_floom(data, work / f"sandbox-{mode}.log",
                                        server_env({"FLOOM_SANDBOX": mode}))
        return asyncio.run(_alternate(servers, runs))
    finally:
        for server in servers.values():
            server.stop()


async def _alternate(servers: dict[str, Server], runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {mode: [] for mode in servers}
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        for i in range(runs + 1):
            for mode, server in servers.items():
                start = time.perf_counter()
                run_id = await measure._trigger(session, server)
                status = await measure._until_closed(session, server, run_id)
                if status != "completed":
                    raise RuntimeError(f"run {run_id} on the {mode} server ended {status}")
                if i:  # the first run of each server is a warm-up
                    out[mode].append(time.perf_counter() - start)
    return out


def bare_start(repeats: int) -> dict[str, list[float]]:
    """Seconds to run `/bin/true` confined (the spec a run gets, minus its binds) and plain."""
    sandbox = Sandbox()
    spec = Spec(argv=["/bin/true"], cwd="/", env={},
                limits=Limits(cpu_seconds=10, file_bytes=1 << 20, processes=64))
    out: dict[str, list[float]] = {"bwrap": [], "none": []}
    for _ in range(repeats):
        fd = memfd_with(b"")
        with sandbox.run_uid() as uid:
            argv = sandbox.argv(spec, fd, uid)
            start = time.perf_counter()
            subprocess.run(argv, pass_fds=(fd,), check=True, env={"PATH": UNPRIVILEGED_PATH})
            out["bwrap"].append(time.perf_counter() - start)
        os.close(fd)
        start = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        out["none"].append(time.perf_counter() - start)
    return out

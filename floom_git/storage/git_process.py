"""Running the `git` program: the one environment every git process gets (built from nothing,
so no setting, credential helper or variable of the server's own leaks in, and git never
prompts), a git service process with a body streamed in and its output streamed out (killed and
reaped whatever happens), and the pkt-line framing of git's wire protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path

DEFAULT_HOME = "/tmp"  # git reads no config from it (GIT_CONFIG_GLOBAL), but wants one
CHUNK = 65536
MAX_STDERR = 64 * 1024
KILL_AFTER = 5.0  # seconds a git process has to end after SIGTERM (it removes its quarantine)

Sink = Callable[[bytes], Awaitable[None]]


def git_env(git: str = "git", *, home: Path | str = DEFAULT_HOME, **extra: str) -> dict[str, str]:
    """The whole environment of a `git` process (`git` names the program, found on PATH or
    absolute); `extra` adds variables (an identity, a protocol version, a header)."""
    program = shutil.which(git) or git
    env = {
        "PATH": os.pathsep.join([str(Path(program).parent), os.defpath]),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def pkt_line(data: bytes | str) -> bytes:
    """One pkt-line: four hex digits of length (themselves included), then the data."""
    raw = data.encode() if isinstance(data, str) else data
    return f"{len(raw) + 4:04x}".encode() + raw


async def exchange(argv: list[str], env: dict[str, str], *, cwd: Path | str,
                   body: AsyncIterable[bytes] | None, sink: Sink,
                   timeout: float) -> tuple[int, str]:
    """Run git, feeding `body` to stdin while streaming stdout to `sink` (neither is held in
    memory whole). Returns the exit code and the tail of stderr. The process is stopped if the
    client goes away, the body fails, or `timeout` seconds run out."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=str(cwd),
        stdin=asyncio.subprocess.PIPE if body is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    feeder = asyncio.create_task(_feed(proc, body)) if body is not None else None
    errors = asyncio.create_task(_drain(proc.stderr))
    try:
        async with asyncio.timeout(timeout):
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(CHUNK):
                await sink(chunk)
            if feeder is not None:
                await feeder
            code = await proc.wait()
            err = await errors
    except BaseException:
        _kill(proc)
        for task in (feeder, errors):
            if task is not None:
                task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(_reap(proc))
        raise
    return code, err.decode("utf-8", "replace")


async def _feed(proc: asyncio.subprocess.Process, body: AsyncIterable[bytes]) -> None:
    """Write `body` to git's stdin. When git stops reading (it answers on stdout, e.g. with an
    error) the rest is still read and dropped: the client reads the answer only once it has
    sent everything."""
    assert proc.stdin is not None
    reading = True
    try:
        async for chunk in body:
            if not reading:
                continue
            try:
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                reading = False
    except BaseException:
        _kill(proc)  # the client went away mid-upload: never act on half a request
        raise
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.close()
        await proc.stdin.wait_closed()


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    """Read stderr to the end (so git never blocks on it), keeping the tail."""
    tail = b""
    if stream is None:
        return tail
    while chunk := await stream.read(CHUNK):
        tail = (tail + chunk)[-MAX_STDERR:]
    return tail


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM: git then removes what it was writing (a push's quarantine) on its way out."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()


async def _reap(proc: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(proc.wait(), KILL_AFTER)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

"""Running one command to its end: confined by a `Sandbox` (or, with FLOOM_SANDBOX=none, in its
own process group), its output streamed as lines, stopped on timeout, on cancel or when its scratch
dir grows past its limit, and nothing it started left running afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floom_git.runtime.sandbox import (
    UNPRIVILEGED_PATH,
    Sandbox,
    Spec,
    env_script,
    memfd_with,
    prlimit_argv,
)

MAX_LINE = 16 * 1024
READ_CHUNK = 65536
WATCH_SECONDS = 0.5
REAP_WAIT = 2.0  # after a kill: how long the exit may take before strays are looked for
Emit = Callable[[str], None]


@dataclass(frozen=True)
class Quota:
    """What a command may leave in its scratch dir (checked every WATCH_SECONDS)."""

    path: Path
    max_bytes: int
    max_entries: int = 100_000


@dataclass
class Ended:
    returncode: int
    reason: str | None = None  # None: it exited; else "timeout", "cancelled" or "scratch_full"


@dataclass
class Command:
    spec: Spec
    host_cwd: Path  # the process's cwd on the host (inside, spec.cwd)
    on_stdout: Emit
    on_stderr: Emit
    timeout: float
    grace: float  # SIGTERM, then this long before SIGKILL
    quota: Quota | None = None
    uid: int | None = None  # the run uid of a privileged sandbox
    on_start: Callable[[int], None] | None = None


async def run(cmd: Command, sandbox: Sandbox | None, cancel: asyncio.Event) -> Ended:
    """Run `cmd` under `sandbox` (None: unconfined) until it exits or is stopped. On task
    cancellation everything is killed before CancelledError propagates."""
    proc = await _start(cmd, sandbox)
    if cmd.on_start is not None:
        cmd.on_start(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [asyncio.ensure_future(pump(proc.stdout, cmd.on_stdout)),
               asyncio.ensure_future(pump(proc.stderr, cmd.on_stderr))]
    waiter = asyncio.ensure_future(_ended(proc, readers))
    stoppers: dict[asyncio.Future[Any], str] = {asyncio.ensure_future(cancel.wait()): "cancelled"}
    if cmd.quota is not None:
        stoppers[asyncio.ensure_future(_watch(cmd.quota))] = "scratch_full"
    reason = None
    try:
        done, _ = await asyncio.wait({waiter, *stoppers}, timeout=cmd.timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            reason = next((why for task, why in stoppers.items() if task in done), "timeout")
            await _stop(proc, waiter, sandbox is not None, cmd.grace, cmd.host_cwd)
    finally:
        for task in stoppers:
            task.cancel()
        if not waiter.done():  # the server is stopping: leave no process behind
            _kill(proc.pid, sandbox is not None)
            await asyncio.shield(_reaped(proc, waiter, cmd.host_cwd))
        if sandbox is None:  # what the command left running in its group
            _kill(proc.pid, False)
        _done, pending = await asyncio.wait(readers, timeout=5)
        for task in pending:
            task.cancel()
    return Ended(proc.returncode if proc.returncode is not None else -9, reason)


async def _ended(proc: asyncio.subprocess.Process, readers: Sequence[asyncio.Future[None]]) -> int:
    """The command's exit status once it has exited and its output pipes are closed: a process
    it started may still hold them (a setsid child), and asyncio's wait() waits for the pipes
    only when the exit was not seen yet (on 3.11 it returns at once after it was, which let a
    quick command's escaped child be reported as the end, or be killed in the group before its
    setsid ran)."""
    code = await proc.wait()
    await asyncio.wait(readers)
    return code


async def _start(cmd: Command, sandbox: Sandbox | None) -> asyncio.subprocess.Process:
    pipes = {"stdin": asyncio.subprocess.DEVNULL, "stdout": asyncio.subprocess.PIPE,
             "stderr": asyncio.subprocess.PIPE, "start_new_session": True, "cwd": str(cmd.host_cwd)}
    if sandbox is None:
        # Unconfined the run shares the server's uid: a process count limit would count the server.
        limits = dataclasses.replace(cmd.spec.limits, processes=None)
        return await asyncio.create_subprocess_exec(
            *prlimit_argv(limits), *cmd.spec.argv, env=cmd.spec.env, **pipes)  # type: ignore[arg-type]
    fd = memfd_with(env_script(cmd.spec.env))
    try:
        return await asyncio.create_subprocess_exec(
            *sandbox.argv(cmd.spec, fd, cmd.uid), env={"PATH": UNPRIVILEGED_PATH}, pass_fds=(fd,),
            **pipes)  # type: ignore[arg-type]
    finally:
        os.close(fd)


def _children(pid: int) -> list[int]:
    """The children of `pid` (of all its threads)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _inside(pid: int) -> list[int]:
    """The sandbox's own processes below bwrap (bwrap's reaper inside ignores SIGTERM anyway)."""
    out = []
    for child in descendants(pid):
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() != "bwrap":
                out.append(child)
        except OSError:
            continue
    return out


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill(pid: int, confined: bool) -> None:
    """SIGKILL to every process of the command. Confined: to the sandbox's init, the child of
    bwrap, whose death ends the PID namespace and so every process in it (setsid and double forks
    included); bwrap then reaps it and exits. bwrap is held stopped meanwhile so that it cannot
    start that child unseen; killed itself only when it has none yet (--die-with-parent would
    not cover a child whose setup had not got that far). Unconfined: to the process group."""
    if not confined:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        return
    _signal(pid, signal.SIGSTOP)
    init = _children(pid)
    for child in init:
        _signal(child, signal.SIGKILL)
    _signal(pid, signal.SIGCONT if init else signal.SIGKILL)


async def _stop(proc: asyncio.subprocess.Process, waiter: asyncio.Future[int], confined: bool,
                grace: float, home: Path) -> None:
    """SIGTERM to every process of the command, then SIGKILL after the grace period."""
    if confined:
        inside = _inside(proc.pid)
        if not inside:  # still setting up: nothing to be gentle with
            _kill(proc.pid, confined)
        for pid in inside:
            _signal(pid, signal.SIGTERM)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(waiter), grace)
    except TimeoutError:
        _kill(proc.pid, confined)
        await _reaped(proc, waiter, home)


async def _reaped(proc: asyncio.subprocess.Process, waiter: asyncio.Future[int],
                  home: Path) -> None:
    """Wait for a killed command's end. asyncio reports an exit only once the command's pipes
    are closed, and a process that escaped the kill holds them for ever: a sandbox init orphaned
    while bwrap was still starting it, or (unconfined) a setsid child. So: kill every process
    working in or naming the run's folder `home`, then stop reading the pipes. Never hangs."""
    for step in range(3):
        done, _ = await asyncio.wait({waiter}, timeout=REAP_WAIT)
        if done:
            return
        if step == 0:
            for pid in strays(home):
                _signal(pid, signal.SIGKILL)
        elif step == 1:
            transport = getattr(proc, "_transport", None)  # closing it ends wait() at once
            if transport is not None:
                transport.close()


def strays(home: Path) -> list[int]:
    """Processes (not this one) whose working directory is in `home` or whose command line
    names it: what a run left behind."""
    mark = str(home).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{entry}/cwd").encode()
            if cwd == mark or cwd.startswith(mark + b"/"):
                found.append(int(entry))
                continue
        with contextlib.suppress(OSError):
            if mark in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
    return found


def over_quota(quota: Quota) -> bool:
    """Whether the files under quota.path take more than its bytes or entries (stops early)."""
    used = entries = 0
    todo = [quota.path]
    while todo:
        try:
            scan = os.scandir(todo.pop())
        except OSError:
            continue
        with scan:
            for entry in scan:
                entries += 1
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                used += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                if used > quota.max_bytes or entries > quota.max_entries:
                    return True
    return False


async def _watch(quota: Quota) -> None:
    """Returns once the scratch dir is over its quota."""
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        if await asyncio.to_thread(over_quota, quota):
            return


async def pump(stream: asyncio.StreamReader, emit: Emit) -> None:
    """Read a pipe to its end, emitting each line (over-long lines are split)."""
    def lines(data: bytes) -> None:
        # Pieces are cut at multiples of MAX_LINE from the line start, however reads split it.
        for start in range(0, max(len(data), 1), MAX_LINE):
            emit(data[start:start + MAX_LINE].decode("utf-8", "replace").rstrip("\r"))

    buf = b""
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines(line)
        while len(buf) > MAX_LINE:
            emit(buf[:MAX_LINE].decode("utf-8", "replace"))
            buf = buf[MAX_LINE:]
    if buf:
        lines(buf)

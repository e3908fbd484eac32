"""git smart HTTP as a service: one `git upload-pack|receive-pack --stateless-rpc` process per
request, with an explicit environment, the request body streamed in and the output streamed out.
A push is first received into a spool file (no lock held while a client uploads, and a total
size limit); then receive-pack runs on it under the workspace writer lock with the server-owned
pre-receive hook, and the server catches up (working tree, index, workers, events) before the
push's answer is sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import floom_git
from floom_git.config import Settings
from floom_git.errors import FloomError
from floom_git.services import freeze, receive_wire
from floom_git.services.actor import Actor
from floom_git.services.push import PushPolicy, unsynced_edits
from floom_git.services.workspaces import Workspace
from floom_git.storage.repo import MAIN

log = logging.getLogger("floom_git.git")

UPLOAD = "git-upload-pack"
RECEIVE = "git-receive-pack"
SERVICES = (UPLOAD, RECEIVE)
# What Gitea accepts from the Git-Protocol header before handing it to git as GIT_PROTOCOL.
PROTOCOL_RE = re.compile(r"^[0-9a-zA-Z]+=[0-9a-zA-Z]+(:[0-9a-zA-Z]+=[0-9a-zA-Z]+)*$")
CHUNK = 65536
MAX_STDERR = 64 * 1024
EVENT_PATHS = 200

Sink = Callable[[bytes], Awaitable[None]]


@dataclass
class PushOutcome:
    refs: dict[str, tuple[str | None, str | None]] = field(
        default_factory=dict
    )  # ref -> (old, new)
    files: list[str] = field(default_factory=list)  # files on main the push changed
    workers: set[str] = field(default_factory=set)


def valid_protocol(value: str | None) -> str | None:
    """The Git-Protocol header if it is safe to pass on (e.g. `version=2`), else None."""
    return value if value and PROTOCOL_RE.match(value) else None


def pkt_line(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


class GitTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.git = shutil.which(settings.git_binary) or settings.git_binary
        self.hooks_dir = settings.system_dir / "hooks"
        self.home = settings.system_dir / "git-home"
        self._slots = asyncio.Semaphore(max(1, settings.git_max_processes))
        self._hooks_ready = False

    # -- setup ----------------------------------------------------------------------------
    def ensure_hooks(self) -> Path:
        """Write the server-owned hooks folder (core.hooksPath); workspace repos carry none."""
        script = (
            "#!/bin/sh\n"
            "# Written by floom-git at start-up: validates every push before any ref moves.\n"
            f"exec {shlex.quote(sys.executable)} -m floom_git.hooks.pre_receive\n"
        )
        self.hooks_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        hook = self.hooks_dir / "pre-receive"
        if not hook.exists() or hook.read_text() != script:
            tmp = hook.with_name(".pre-receive.tmp")
            tmp.write_text(script)
            tmp.chmod(0o755)
            os.replace(tmp, hook)
        self._hooks_ready = True
        return self.hooks_dir

    def env(self, ws: Workspace, actor: Actor, protocol: str | None) -> dict[str, str]:
        """The whole environment git runs with: nothing leaks in from the server's own."""
        env = {
            "PATH": os.pathsep.join([str(Path(self.git).parent), os.defpath]),
            "HOME": str(self.home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
            # The hook imports floom_git even when the package is not installed.
            "PYTHONPATH": str(Path(floom_git.__file__).resolve().parent.parent),
            "PYTHONDONTWRITEBYTECODE": "1",
            # Who pushed shows in the reflog; the hook may use them in messages.
            "GIT_COMMITTER_NAME": actor.name or "floom",
            "GIT_COMMITTER_EMAIL": actor.email or "floom@floom.local",
            "REMOTE_USER": actor.user_id,
            "FLOOM_WORKSPACE": ws.id,
        }
        if protocol:
            env["GIT_PROTOCOL"] = protocol
        return env

    def argv(self, service: str, ws: Workspace, *, advertise: bool = False) -> list[str]:
        argv = [self.git]
        if service == RECEIVE:
            argv += [
                "-c",
                f"core.hooksPath={self.hooks_dir}",
                # The server updates its own working tree after the push (finish_ref_move).
                "-c",
                "receive.denyCurrentBranch=ignore",
                "-c",
                "receive.fsckObjects=true",
                "-c",
                "receive.denyNonFastForwards=true",
                # No detached `git gc --auto` after a push: it would hold repository locks the
                # server's start-up cleanup takes for crash leftovers. Upkeep runs in-process.
                "-c",
                "receive.autogc=false",
            ]
        argv += [service.removeprefix("git-"), "--stateless-rpc"]
        if advertise:
            argv.append("--advertise-refs")
        return argv + [str(ws.path)]

    # -- the three requests -----------------------------------------------------------------
    async def advertise(
        self, ws: Workspace, actor: Actor, service: str, protocol: str | None, sink: Sink
    ) -> None:
        """GET info/refs: the `# service=` header (clients accept it for v2 too), then the refs."""
        await sink(pkt_line(f"# service={service}\n") + b"0000")
        code, err = await self._exchange(
            self.argv(service, ws, advertise=True), self.env(ws, actor, protocol), None, sink
        )
        if code != 0:
            log.warning(
                "%s --advertise-refs for %s exited %s: %s", service, ws.id, code, err[-500:]
            )

    async def upload_pack(
        self,
        ws: Workspace,
        actor: Actor,
        protocol: str | None,
        body: AsyncIterable[bytes],
        sink: Sink,
    ) -> None:
        """POST git-upload-pack: fetch and clone. Reads never take the writer lock."""
        code, err = await self._exchange(
            self.argv(UPLOAD, ws), self.env(ws, actor, protocol), body, sink
        )
        if code != 0:
            log.info("upload-pack for %s exited %s: %s", ws.id, code, err[-500:])

    async def receive_pack(
        self,
        ws: Workspace,
        actor: Actor,
        protocol: str | None,
        body: AsyncIterable[bytes],
        sink: Sink,
    ) -> PushOutcome:
        """POST git-receive-pack. The request is spooled to disk first, without any lock: a slow
        pusher never stalls other writers. Then receive-pack runs on the spool under the writer
        lock; its answer is sent once the lock is let go and the server has caught up, so when
        `git push` returns the working tree, the workers and the events already reflect it."""
        if not self._hooks_ready:
            await asyncio.to_thread(self.ensure_hooks)
        limit = self.settings.push_max_bytes
        async with asyncio.timeout(self.settings.git_timeout_seconds):
            spooled = await receive_wire.spool(body, Path(ws.repo.repo.path), limit)
        try:
            if spooled.too_large:
                log.info("push to %s by %s refused: %d bytes is over %d", ws.id, actor.user_id,
                         spooled.size, limit)
                await sink(receive_wire.refusal(spooled, [
                    f"push rejected: the push is larger than {limit} bytes "
                    f"(FLOOM_PUSH_MAX_BYTES); nothing was changed on the server",
                    "  push in smaller parts, or keep large files out of the workspace",
                ], "push too large"))
                return PushOutcome()
            answer, outcome = await self._receive_locked(ws, actor, protocol, spooled)
        finally:
            spooled.remove()
        await sink(answer)
        return outcome

    async def _receive_locked(self, ws: Workspace, actor: Actor, protocol: str | None,
                              spooled: receive_wire.Spooled) -> tuple[bytes, PushOutcome]:
        """receive-pack on a spooled request under the writer lock; its whole answer (a report
        and a few progress lines) is kept until the server has caught up."""
        env = self.env(ws, actor, protocol)
        out: list[bytes] = []

        async def keep(chunk: bytes) -> None:
            out.append(chunk)

        async with ws.writer.locked():
            try:
                freeze.check_writable(ws)
                before, dirty = await asyncio.to_thread(_begin_push, ws)
            except FloomError as exc:  # the working tree cannot follow main right now
                return receive_wire.refusal(spooled, [f"push rejected: {exc.message}"],
                                            "workspace unavailable"), PushOutcome()
            env.update(PushPolicy.for_worktree(self.settings.max_file_bytes, dirty).to_env())
            try:
                argv = self.argv(RECEIVE, ws)
                code, err = await self._exchange(argv, env, spooled.path, keep)
                if code != 0:
                    log.info("receive-pack for %s exited %s: %s", ws.id, code, err[-500:])
            finally:
                # Also when it failed: refs may have moved all the same.
                outcome = await asyncio.to_thread(_finish_push, ws, before)
                self._announce(ws, actor, before, outcome)
        return b"".join(out), outcome

    # -- process plumbing -------------------------------------------------------------------
    async def _exchange(
        self,
        argv: list[str],
        env: dict[str, str],
        body: AsyncIterable[bytes] | Path | None,
        sink: Sink,
    ) -> tuple[int, str]:
        """Run git, feeding `body` (a stream, or a spooled file) to stdin while streaming stdout
        to `sink`. Returns the exit code and the tail of stderr. The process is killed if the
        client goes away, the body fails, or the time runs out."""
        async with self._slots:
            stdin_file = open(body, "rb") if isinstance(body, Path) else None  # noqa: SIM115
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=str(self.home),
                    stdin=(stdin_file if stdin_file is not None else
                           asyncio.subprocess.PIPE if body is not None else
                           asyncio.subprocess.DEVNULL),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            finally:
                if stdin_file is not None:
                    stdin_file.close()  # the child has its own copy
            streamed = body is not None and not isinstance(body, Path)
            feeder = (asyncio.create_task(_feed(proc, body))  # type: ignore[arg-type]
                      if streamed else None)
            errors = asyncio.create_task(_drain(proc.stderr))
            try:
                async with asyncio.timeout(self.settings.git_timeout_seconds):
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
                    await asyncio.shield(proc.wait())
                raise
        return code, err.decode("utf-8", "replace")

    def _announce(
        self, ws: Workspace, actor: Actor, before: dict[str, str], outcome: PushOutcome
    ) -> None:
        if not outcome.refs:
            return
        old, new = outcome.refs.get(MAIN, (before.get(MAIN), before.get(MAIN)))
        ws.events.emit(
            "push",
            actor=actor.user_id,
            refs=[{"ref": r, "old": o, "new": n} for r, (o, n) in sorted(outcome.refs.items())],
            sha=new,
            before=old,
            paths=outcome.files[:EVENT_PATHS],
            paths_truncated=len(outcome.files) > EVENT_PATHS,
            workers=sorted(outcome.workers),
        )
        log.info(
            "push to %s by %s: %s",
            ws.id,
            actor.user_id,
            ", ".join(
                f"{r} {(o or '0')[:7]}..{(n or '0')[:7]}"
                for r, (o, n) in sorted(outcome.refs.items())
            ),
        )


def _snapshot(ws: Workspace) -> dict[str, str]:
    repo = ws.repo.repo
    out = {}
    for name in repo.references:
        if name.startswith(("refs/heads/", "refs/tags/")):
            with contextlib.suppress(KeyError, ValueError):
                out[name] = str(repo.references[name].resolve().target)
    return out


def _begin_push(ws: Workspace) -> tuple[dict[str, str], list[str]]:
    """Under the writer lock, before receive-pack starts: refs, unsynced edits, and a journal
    so a crash between the ref move and the working-tree update is repaired at start-up."""
    before = _snapshot(ws)
    dirty = unsynced_edits(ws.repo)
    ws.repo.begin_ref_move(before.get(MAIN))
    return before, dirty


def _finish_push(ws: Workspace, before: dict[str, str]) -> PushOutcome:
    """After receive-pack exits (whatever happened): which refs moved, and the working tree,
    index and workers brought up to date with main."""
    after = _snapshot(ws)
    outcome = PushOutcome()
    for ref in sorted(set(before) | set(after)):
        if before.get(ref) != after.get(ref):
            outcome.refs[ref] = (before.get(ref), after.get(ref))
    try:
        outcome.files = ws.repo.finish_ref_move(before.get(MAIN))
    except Exception:  # the push has landed; the journal repairs the tree on the next write
        log.exception("push to %s landed but the working tree could not be updated", ws.id)
        outcome.files = ws.repo.changed_files(before.get(MAIN), after.get(MAIN))
    if outcome.files:
        try:
            outcome.workers = ws.workers.reload_paths(outcome.files)
        except Exception:  # the push landed: a reload failure must not turn it into a failure
            log.exception("push to %s landed but its workers could not be reloaded", ws.id)
    return outcome


async def _feed(proc: asyncio.subprocess.Process, body: AsyncIterable[bytes]) -> None:
    assert proc.stdin is not None
    try:
        async for chunk in body:
            proc.stdin.write(chunk)
            await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return  # git stopped reading (it answers on stdout, e.g. with an error)
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
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

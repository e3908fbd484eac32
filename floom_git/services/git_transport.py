"""git smart HTTP as a service: which `git upload-pack|receive-pack --stateless-rpc` process
runs for a request, with which environment, and what a push changed (storage/git_process.py runs
the process, streaming the request body in and the output out).

A push streams into receive-pack as it arrives (no lock is held while a client uploads, and the
body counts against a size limit). The server-owned pre-receive hook asks this process's push
validator (services/hook_server.py) about it: the validator takes the workspace writer lock,
checks the quarantined objects, and holds the lock until receive-pack has exited, so no other
write moves a ref between the check and the push landing. Then the server catches up (working
tree, index, workers, events) before the push's answer is sent."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shlex
import shutil
import socket
import sys
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path

from floom_git.config import Settings
from floom_git.errors import FloomError
from floom_git.hooks import pre_receive
from floom_git.services import freeze, receive_wire
from floom_git.services.actor import Actor
from floom_git.services.hook_server import HookRequest, HookServer
from floom_git.services.moves import Moved
from floom_git.services.push import PushPolicy, unsynced_edits, validate_quarantined
from floom_git.services.push_problems import (
    Kind,
    Problem,
    format_rejection,
    headline,
    refused,
)
from floom_git.services.workspaces import Workspace
from floom_git.storage import git_process, repo_info
from floom_git.storage.atomic import atomic_write
from floom_git.storage.git_process import Sink, git_env, pkt_line
from floom_git.storage.repo import MAIN

log = logging.getLogger("floom_git.git")

UPLOAD = "git-upload-pack"
RECEIVE = "git-receive-pack"
SERVICES = (UPLOAD, RECEIVE)
# What Gitea accepts from the Git-Protocol header before handing it to git as GIT_PROTOCOL.
PROTOCOL_RE = re.compile(r"^[0-9a-zA-Z]+=[0-9a-zA-Z]+(:[0-9a-zA-Z]+=[0-9a-zA-Z]+)*$")
CHUNK = git_process.CHUNK  # the pieces a request body is read in
HOOK_SOCKET = "pre-receive.sock"  # in the server's system folder
PERL_HOOK = Path(pre_receive.__file__).with_suffix(".pl")


@dataclass
class _Push:
    """A receive-pack in flight, known to the validator by its id."""

    ws: Workspace
    actor: Actor
    upload: receive_wire.Upload
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    holder: asyncio.Task[Moved] | None = None  # holds the writer lock once the hook asked


def hook_script(perl: str | None) -> str:
    """The pre-receive hook: the Perl client (hooks/pre_receive.pl) run by `perl` when there is
    one, else the Python client run as a file without site-packages (-S) or the environment's
    Python settings (-I). Both are tiny clients of this server, but Perl starts in about 2 ms and
    Python in 10-15 ms, which every push waits for."""
    head = "# Written by floom-git at start-up: validates every push before any ref moves.\n"
    if perl and _shebang_safe(perl):
        source = PERL_HOOK.read_text()
        for name in ("AF_UNIX", "SOCK_STREAM", "SHUT_WR"):
            source = source.replace(f"@{name}@", str(int(getattr(socket, name))))
        return f"#!{perl}\n{head}{source}"
    return (f"#!/bin/sh\n{head}"
            f"exec {shlex.quote(sys.executable)} -S -I {shlex.quote(pre_receive.__file__)}\n")


def _shebang_safe(program: str) -> bool:
    """A path a `#!` line can name: absolute, short, no white space (the kernel splits there)."""
    return program.startswith("/") and len(program) < 120 and not any(
        c.isspace() for c in program)


def valid_protocol(value: str | None) -> str | None:
    """The Git-Protocol header if it is safe to pass on (e.g. `version=2`), else None."""
    return value if value and PROTOCOL_RE.match(value) else None


class GitTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.git = shutil.which(settings.git_binary) or settings.git_binary
        self.hooks_dir = settings.system_dir / "hooks"
        self.home = settings.system_dir / "git-home"
        self._slots = asyncio.Semaphore(max(1, settings.git_max_processes))
        self._hooks_ready = False
        self.hook_server = HookServer(settings.system_dir / HOOK_SOCKET, self._answer_hook)
        self.pushes: dict[str, _Push] = {}  # pushes in flight, by the id their hook names

    async def start(self) -> None:
        """Listen for the pre-receive hook (until stop); a push meanwhile is refused."""
        await self.hook_server.start()

    async def stop(self) -> None:
        await self.hook_server.stop()

    # -- setup ----------------------------------------------------------------------------
    def ensure_hooks(self) -> Path:
        """Write the server-owned hooks folder (core.hooksPath); workspace repos carry none.
        The hook asks this server about the push (hook_script); a push waits for it."""
        script = hook_script(shutil.which("perl"))
        self.hooks_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        hook = self.hooks_dir / "pre-receive"
        if not hook.exists() or hook.read_text() != script:
            atomic_write(hook, script.encode(), mode=0o755, durable=False)
        self._hooks_ready = True
        return self.hooks_dir

    def env(self, ws: Workspace, actor: Actor, protocol: str | None) -> dict[str, str]:
        """The whole environment git runs with: nothing leaks in from the server's own."""
        env = git_env(
            self.git, home=self.home,
            # Who pushed shows in the reflog; the hook may use them in messages.
            GIT_COMMITTER_NAME=actor.name or "floom",
            GIT_COMMITTER_EMAIL=actor.email or "floom@floom.local",
            REMOTE_USER=actor.user_id,
            FLOOM_WORKSPACE=ws.id,
        )
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
                # The connectivity check's negative tips: the quarantine's only alternate is
                # this repository, whose refs --all names already, so listing them again with a
                # `git for-each-ref` process per push adds nothing but its start-up (and fewer
                # tips could only make the check walk more, never trust more).
                "-c",
                "core.alternateRefsCommand=true",
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
    ) -> Moved:
        """POST git-receive-pack. The body streams into receive-pack without any lock: a slow
        pusher never stalls other writers. The writer lock is taken when the hook asks (the
        pack is then in) and let go once receive-pack has exited and the server has caught up;
        the answer is sent after that, so when `git push` returns the working tree, the
        workers and the events already reflect it."""
        if not self._hooks_ready or not os.access(self.hooks_dir / "pre-receive", os.X_OK):
            await asyncio.to_thread(self.ensure_hooks)  # never a push without its checks
        limit = self.settings.push_max_bytes
        upload = receive_wire.Upload(limit)
        push_id = secrets.token_hex(16)
        push = self.pushes[push_id] = _Push(ws, actor, upload)
        env = self.env(ws, actor, protocol)
        env[pre_receive.PUSH_ENV] = push_id
        env[pre_receive.SOCKET_ENV] = str(self.hook_server.path)
        out: list[bytes] = []

        async def keep(chunk: bytes) -> None:  # a report and a few progress lines
            out.append(chunk)

        try:
            code, err = await self._exchange(self.argv(RECEIVE, ws), env, upload.stream(body),
                                             keep)
            if code != 0:
                log.info("receive-pack for %s exited %s: %s", ws.id, code, err[-500:])
        finally:
            push.exited.set()
            del self.pushes[push_id]
            # Also when it failed: refs may have moved all the same.
            outcome = await _outcome(push)
        if upload.too_large:
            log.info("push to %s by %s refused: %d bytes is over %d", ws.id, actor.user_id,
                     upload.size, limit)
            await sink(receive_wire.refusal(upload, [
                headline(f"the push is larger than {limit} bytes (FLOOM_PUSH_MAX_BYTES); "
                         "nothing was changed on the server"),
                "  push in smaller parts, or keep large files out of the workspace",
            ], "push too large"))
        else:
            await sink(b"".join(out))
        return outcome

    async def _answer_hook(self, request: HookRequest) -> tuple[bool, str]:
        """The pre-receive hook of a push asks: take the writer lock (held until the push's
        receive-pack exits), then check the pushed objects against the refs of this moment."""
        push = self.pushes.get(request.push_id)
        if push is None or push.holder is not None:
            return False, refused("this server is not receiving that push")
        answer: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        push.holder = asyncio.create_task(self._hold(push, request, answer))
        return await asyncio.shield(answer)

    async def _hold(self, push: _Push, request: HookRequest,
                    answer: asyncio.Future[tuple[bool, str]]) -> Moved:
        ws = push.ws
        try:
            await push.upload.complete.wait()  # a request is acted on only once all of it came
            if push.upload.failed or push.upload.too_large:
                answer.set_result((False, refused("the upload was cut short")))
                return Moved("push")
            async with ws.writer.locked():
                try:
                    freeze.check_writable(ws)
                    before, dirty = await asyncio.to_thread(_begin_push, ws)
                except FloomError as exc:  # frozen, or the working tree cannot follow main
                    answer.set_result((False, refused(exc.message)))
                    return Moved("push")
                try:
                    policy = PushPolicy.for_worktree(self.settings.max_file_bytes, dirty)
                    try:
                        problems = await asyncio.to_thread(
                            validate_quarantined, str(ws.git_dir), request.quarantine,
                            request.updates, policy)
                    except Exception as exc:  # fail closed, and say why
                        log.exception("push to %s could not be checked", ws.id)
                        problems = [Problem("", Kind.UNCHECKED,
                                            f"the server could not check this push ({exc})")]
                    answer.set_result((not problems,
                                       format_rejection(problems) if problems else ""))
                    await push.exited.wait()
                finally:
                    refs, files = await asyncio.to_thread(_finish_push, ws, before)
                    outcome = await self._announce(ws, push.actor, before, refs, files)
                return outcome
        finally:
            if not answer.done():  # cancelled or failed: the hook refuses, never waits forever
                answer.set_result((False, refused("the server could not check this push; "
                                                  "nothing was changed on the server")))

    async def _exchange(self, argv: list[str], env: dict[str, str],
                        body: AsyncIterable[bytes] | None, sink: Sink) -> tuple[int, str]:
        """One git process at a time per slot (git_max_processes), within git_timeout_seconds."""
        async with self._slots:
            return await git_process.exchange(argv, env, cwd=self.home, body=body, sink=sink,
                                              timeout=self.settings.git_timeout_seconds)

    async def _announce(
        self, ws: Workspace, actor: Actor, before: dict[str, str],
        refs: dict[str, tuple[str | None, str | None]], files: list[str],
    ) -> Moved:
        if not refs:
            return Moved("push")
        old, new = refs.get(MAIN, (before.get(MAIN), before.get(MAIN)))
        log.info("push to %s by %s: %s", ws.id, actor.user_id, ", ".join(
            f"{r} {(o or '0')[:7]}..{(n or '0')[:7]}" for r, (o, n) in sorted(refs.items())))
        return await ws.moves.main_moved(old, new, files, actor.user_id, "push", refs=refs)


async def _outcome(push: _Push) -> Moved:
    """What the push changed, once its lock holder (if its hook asked) has caught up."""
    if push.holder is None:
        return Moved("push")  # no hook ran: no ref moved
    try:
        return await push.holder
    except Exception:
        log.exception("push to %s: catching up after it failed", push.ws.id)
        return Moved("push")


def _begin_push(ws: Workspace) -> tuple[dict[str, str], list[str]]:
    """Under the writer lock, before receive-pack starts: refs, unsynced edits, and a journal
    so a crash between the ref move and the working-tree update is repaired at start-up."""
    before = repo_info.heads_and_tags(ws.repo)
    dirty = unsynced_edits(ws.repo)
    ws.repo.begin_ref_move(before.get(MAIN))
    return before, dirty


def _finish_push(
    ws: Workspace, before: dict[str, str]
) -> tuple[dict[str, tuple[str | None, str | None]], list[str]]:
    """After receive-pack exits (whatever happened): which refs moved, and the files of main it
    changed, with the working tree and index brought up to date with main."""
    after = repo_info.heads_and_tags(ws.repo)
    refs = {ref: (before.get(ref), after.get(ref)) for ref in sorted(set(before) | set(after))
            if before.get(ref) != after.get(ref)}
    try:
        files = ws.repo.finish_ref_move(before.get(MAIN))
    except Exception:  # the push has landed; the journal repairs the tree on the next write
        log.exception("push to %s landed but the working tree could not be updated", ws.id)
        files = ws.repo.changed_files(before.get(MAIN), after.get(MAIN))
    return refs, files

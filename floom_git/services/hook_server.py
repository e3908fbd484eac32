"""The server side of the pre-receive hook: a Unix socket in the data directory that the hook
(floom_git/hooks/pre_receive.py) connects to, one connection per push. The push's checks run in
this long-lived process, which already has pygit2, the schemas and the workspace loaded, instead
of in a fresh Python process per push."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from floom_git.hooks import pre_receive
from floom_git.services.push_problems import refused

log = logging.getLogger("floom_git.git")

SOCKET_NAME = "pre-receive.sock"
MAX_REQUEST = 32 * 1024 * 1024  # ref update lines; a push of 100,000 tags is about 10 MB


@dataclass(frozen=True)
class HookRequest:
    push_id: str
    quarantine: str  # the folder holding the pushed objects ("" when git uses none)
    updates: str  # the `<old> <new> <ref>` lines


# (accepted, text for the pushing person); raising refuses the push with the error named.
Answer = Callable[[HookRequest], Awaitable[tuple[bool, str]]]


def parse(data: bytes) -> HookRequest:
    """The hook's request; ValueError when it is not one."""
    head, sep, updates = data.partition(b"\n\n")
    lines = head.split(b"\n")
    if not sep or lines[0] != pre_receive.PROTOCOL:
        raise ValueError("not a pre-receive request of this server")
    fields = dict(line.decode("utf-8").partition(" ")[::2] for line in lines[1:])
    if not fields.get("push"):
        raise ValueError("the request names no push")
    return HookRequest(fields["push"], fields.get("quarantine", ""),
                       updates.decode("utf-8", "replace"))


class HookServer:
    """Listens on `path` while started; `answer` decides each push."""

    def __init__(self, path: Path, answer: Answer) -> None:
        self.path = path
        self._answer = answer
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a server that was killed
        sock = _bind(self.path)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = bytearray()
            while chunk := await reader.read(65536):
                data += chunk
                if len(data) > MAX_REQUEST:
                    break
            try:
                if len(data) > MAX_REQUEST:
                    raise ValueError("the request is too large")
                accepted, text = await self._answer(parse(bytes(data)))
            except Exception as exc:  # fail closed, and say why
                log.exception("pre-receive request could not be answered")
                accepted, text = False, refused(f"the server could not check this push ({exc}); "
                                                "nothing was changed on the server")
            writer.write((b"ok\n" if accepted else b"refused\n") + text.encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the hook went away: git refuses the push without its answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _bind(path: Path) -> socket.socket:
    """A listening Unix socket at `path`; through the folder's descriptor when the path is
    longer than a socket address may be (107 bytes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(path)) < 100:
            sock.bind(str(path))
        else:
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.bind(f"/proc/self/fd/{folder}/{path.name}")
            finally:
                os.close(folder)
        os.chmod(path, 0o600)
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock

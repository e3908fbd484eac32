"""The receive-pack request as it arrives over smart HTTP, and a refusal in git's own report
format: spooling the request to a file (so the writer lock is never held while a client
uploads), reading its ref commands, and answering `remote:` lines plus one `ng` per ref."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path

SPOOL_PREFIX = ".floom-push-"  # in the repository's .git; start-up removes leftovers
HEAD_BYTES = 256 * 1024  # the commands come before the pack, in the first bytes


@dataclass
class Spooled:
    """A receive-pack request body on disk (or its first bytes when it was too large)."""

    path: Path
    size: int = 0  # bytes received, including those past the limit that were not kept
    too_large: bool = False
    refs: list[str] = field(default_factory=list)
    sideband: bool = False

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def spool(body: AsyncIterable[bytes], folder: Path, limit: int) -> Spooled:
    """Receive the whole body into a file in `folder`; past `limit` bytes the rest is read and
    dropped (the client reads the refusal only once it has sent everything)."""
    fd, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=folder)
    out = Spooled(Path(name))
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in body:
                out.size += len(chunk)
                if out.size > limit:
                    out.too_large = True
                    continue
                fh.write(chunk)
        with out.path.open("rb") as fh:
            out.refs, out.sideband = commands(fh.read(HEAD_BYTES))
    except BaseException:
        out.remove()  # a client that went away mid-upload: never act on half a request
        raise
    return out


def commands(head: bytes) -> tuple[list[str], bool]:
    """The refs a receive-pack request updates, and whether the client asked for side-band."""
    refs: list[str] = []
    sideband = False
    pos = 0
    while pos + 4 <= len(head):
        try:
            size = int(head[pos:pos + 4], 16)
        except ValueError:
            break
        if size == 0:
            break
        line = head[pos + 4:pos + size]
        pos += size
        text, _, caps = line.rstrip(b"\n").partition(b"\0")
        if caps:
            sideband = b"side-band-64k" in caps.split() or b"side-band" in caps.split()
        parts = text.split(b" ")
        if len(parts) == 3 and len(parts[0]) in (40, 64):
            refs.append(parts[2].decode("utf-8", "replace"))
    return refs, sideband


def pkt(data: bytes) -> bytes:
    return f"{len(data) + 4:04x}".encode() + data


def refusal(spooled: Spooled, lines: list[str], reason: str) -> bytes:
    """git's answer refusing every ref of the request: `lines` as `remote:` messages, then
    `unpack <reason>` and `ng <ref> <reason>` (shown as `! [remote rejected] ... (<reason>)`)."""
    report = pkt(f"unpack {reason}\n".encode())
    report += b"".join(pkt(f"ng {ref} {reason}\n".encode()) for ref in spooled.refs) + b"0000"
    if not spooled.sideband:
        return report
    out = b"".join(pkt(b"\x02" + f"{line}\n".encode()) for line in lines)
    for start in range(0, len(report), 65515):  # side-band-64k: at most 65520 bytes per packet
        out += pkt(b"\x01" + report[start:start + 65515])
    return out + b"0000"

"""The receive-pack request as it arrives over smart HTTP, and a refusal in git's own report
format. The request is streamed into git as it arrives (the pack is written once, by git, into
its quarantine); its first bytes name the refs it updates, its size is counted against the
limit, and a refusal answers `remote:` lines plus one `ng` per ref."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from floom_git.storage.git_process import pkt_line

HEAD_BYTES = 256 * 1024  # the commands come before the pack, in the first bytes


@dataclass
class Upload:
    """One receive-pack request body on its way into git."""

    limit: int
    size: int = 0  # bytes received, including those past the limit that git never got
    too_large: bool = False
    head: bytearray = field(default_factory=bytearray)
    # Set once the whole body has arrived; `failed` when the client went away before that.
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False

    @property
    def refs(self) -> list[str]:
        return commands(bytes(self.head))[0]

    @property
    def sideband(self) -> bool:
        return commands(bytes(self.head))[1]

    async def stream(self, body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The body as git gets it: all of it, or, past the limit, the part before it (git then
        finds the pack cut short and refuses it). The rest is still read and dropped: the
        client reads the answer only once it has sent everything."""
        try:
            async for chunk in body:
                self.size += len(chunk)
                if len(self.head) < HEAD_BYTES:
                    self.head += chunk[:HEAD_BYTES - len(self.head)]
                if self.size > self.limit:
                    self.too_large = True
                if not self.too_large:
                    yield chunk
        except BaseException:
            self.failed = True  # never act on half a request
            raise
        finally:
            self.complete.set()


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


def refusal(upload: Upload, lines: list[str], reason: str) -> bytes:
    """git's answer refusing every ref of the request: `lines` as `remote:` messages, then
    `unpack <reason>` and `ng <ref> <reason>` (shown as `! [remote rejected] ... (<reason>)`)."""
    report = pkt_line(f"unpack {reason}\n".encode())
    report += b"".join(pkt_line(f"ng {ref} {reason}\n".encode()) for ref in upload.refs) + b"0000"
    if not upload.sideband:
        return report
    out = b"".join(pkt_line(b"\x02" + f"{line}\n".encode()) for line in lines)
    for start in range(0, len(report), 65515):  # side-band-64k: at most 65520 bytes per packet
        out += pkt_line(b"\x01" + report[start:start + 65515])
    return out + b"0000"

"""The machinery behind server-owned branches written from a durable spool (floom/runs,
floom/conversations): fsync'd spool files, lines appended durably and committed exactly once, and
a timer that groups every change of a short window into one commit, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from floom_git import paths
from floom_git.storage.atomic import atomic_write

if TYPE_CHECKING:
    from floom_git.storage.repo import WorkspaceRepo

log = logging.getLogger("floom_git.spool")
MAX_BACKOFF_STEPS = 8


def fsync_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, durable on return (private to the server's user)."""
    atomic_write(path, data, mode=0o600, durable=True)


def fsync_append(path: Path, line: bytes) -> None:
    """Append one line to `path`, durable on return."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        fh.write(line.rstrip(b"\n") + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def unapplied(have: bytes, pending: bytes) -> bytes:
    """The lines of `pending` not yet at the end of `have`: a crash between a commit and the
    spool cleanup leaves already-committed lines at the start of `pending`."""
    lines = pending.splitlines(keepends=True)
    for k in range(len(lines), 0, -1):
        if have.endswith(b"".join(lines[:k])):
            return b"".join(lines[k:])
    return pending


def committed_and_spooled(repo: WorkspaceRepo, ref: str, path: str, pending: Path,
                          ) -> bytes | None:
    """`path` as `ref` holds it, followed by the lines appended at `pending` that no commit
    holds yet; None when neither exists. A flush may commit the spooled lines and drop them
    between the two reads (the file then missing, or missing its committed start): both are
    read again until `ref` stayed put across them, and lines the commit holds are not added
    twice."""
    data: bytes | None = None
    spooled: bytes | None = None
    for _ in range(5):
        tip = repo.tip(ref)
        data = repo.read_blob(tip, path)
        spooled = read_if_there(pending)  # None: none, or committed and dropped
        now = repo.tip(ref)
        if (now.id if now else None) == (tip.id if tip else None):
            break
    if spooled is None:
        return data
    return (data or b"") + unapplied(data or b"", spooled)


def read_if_there(path: Path) -> bytes | None:
    """The bytes of a spool file, or None when it is not there (any more: a flush that
    committed it may remove it at any moment, so it is read, not tested first)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def drop_prefix(path: Path, size: int) -> None:
    """Remove the first `size` bytes of `path` (committed), keeping lines appended since."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    if len(data) <= size:
        path.unlink()
    else:
        fsync_write(path, data[size:])


def appended_sizes(folder: Path) -> dict[str, int]:
    """The size now of each file appended to under `folder`. A commit takes this much when it
    snapshots its record: lines appended later wait for the next commit, so every commit's
    record and appended lines agree."""
    return {rel: full.stat().st_size for rel, full in _committable(folder)}


def read_prefix(path: Path, size: int) -> bytes:
    """The first `size` bytes of `path` (an appended file's lines up to a snapshot)."""
    with open(path, "rb") as fh:
        return fh.read(size)


def files_under(folder: Path) -> Iterable[tuple[str, bytes]]:
    """(relative path, bytes) of the regular files under `folder` that a commit may hold."""
    return [(rel, full.read_bytes()) for rel, full in _committable(folder)]


def _committable(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, path) of the regular files under `folder`, in name order, that a commit
    may hold: a name no commit may hold (git's path rules) would fail every later commit."""
    out: list[tuple[str, Path]] = []
    if folder.is_dir():
        for dirpath, _dirs, names in os.walk(folder):
            for name in sorted(names):
                full = Path(dirpath) / name
                rel = full.relative_to(folder).as_posix()
                if full.is_file() and not full.is_symlink() and paths.is_clean_relpath(rel):
                    out.append((rel, full))
    return out


class CommitTimer:
    """Calls `flush` once `delay` seconds after the first change of a quiet period, so every
    change of that window lands in one commit; again while `pending()` says changes remain, and
    with a doubling delay after failures (the spool keeps everything meanwhile)."""

    def __init__(self, delay: float, flush: Callable[[], Awaitable[None]],
                 pending: Callable[[], bool], what: str) -> None:
        self.delay = delay
        self._flush = flush
        self._pending = pending
        self._what = what
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    def schedule(self) -> None:
        if self._timer is not None or (self._task is not None and not self._task.done()):
            return
        loop = asyncio.get_running_loop()
        delay = self.delay * (2 ** min(self.failures, MAX_BACKOFF_STEPS))
        self._timer = loop.call_later(delay, self._start)

    def cancel(self) -> None:
        """Forget the planned flush (what is spooled stays; a crash looks like this)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._flush()
            self.failures = 0
        except Exception:
            self.failures += 1
            log.exception("committing %s failed; retrying", self._what)
        finally:
            self._task = None
            if self._pending():
                self.schedule()

    async def close(self) -> None:
        """Stop planning flushes and wait for one that is running."""
        self.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

"""The per-workspace serialised writer: the only bridge from async code into repository writes.

One writer per workspace holds an asyncio.Lock (in-process) and an fcntl.flock on
.git/floom-writer.lock (across processes) around every commit and every receive-pack.
Writes that queue up while the lock is busy are committed together (group commit): one lock
hold and one thread hop make a chain of commits, one per write, so every write keeps its own
commit and message (and its objects one pack); the chain lands as a group
(WorkspaceRepo.grouped): each branch moved once, the working tree and index synced once. When
a branch moved under the group (another program's commit), its writes are built again on the
new tip. Listeners run on the event loop after the commits land, then the `landed` hook (the
workspace's move pipeline) is awaited, then each writer is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pygit2

from floom_git.errors import FloomError
from floom_git.storage.repo import MAIN, Changeset, CommitResult, RefMoved, WorkspaceRepo

BuildFn = Callable[[WorkspaceRepo], Changeset | None]
Listener = Callable[[CommitResult, str], None]
# landed([(result, ref, author email), ...]): the commits of one batch, in commit order.
Landed = Callable[[list[tuple[CommitResult, str, str]]], Awaitable[None]]
RETRIES = 3
MAX_BATCH = 64  # bounds how long one thread hop holds the lock

log = logging.getLogger("floom_git.writer")


@dataclass
class _Pending:
    build: BuildFn
    author: pygit2.Signature
    ref: str
    check_worktree: bool
    future: asyncio.Future[CommitResult]
    outcome: CommitResult | BaseException | None = None


class Writer:
    def __init__(self, repo: WorkspaceRepo, max_batch: int = MAX_BATCH) -> None:
        self.repo = repo
        self.max_batch = max_batch
        self._lock = asyncio.Lock()
        self._lock_path = Path(repo.repo.path) / "floom-writer.lock"
        self._queue: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None
        # listeners(result, ref): once per commit made through write(), in commit order.
        self.listeners: list[Listener] = []
        # Awaited once per batch after the listeners and before any writer of the batch is
        # answered, so an acknowledged write is already announced (workers reloaded, events).
        self.landed: Landed | None = None
        # released(): whenever the write lock is let go; refs may have moved (any writer,
        # including a receive-pack run through run_locked).
        self.released: list[Callable[[], None]] = []
        self.commits = 0
        self.batches = 0  # thread hops made by write(); commits / batches = mean group size
        # gate(ref): raises a FloomError to refuse any commit to `ref` now (a frozen workspace).
        self.gate: Callable[[str], None] | None = None

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the workspace write lock (in-process and on the lock file)."""
        try:
            async with self._lock:
                fd = await asyncio.to_thread(_flock, self._lock_path)
                try:
                    yield
                finally:
                    _unflock(fd)
        finally:
            self._notify_released()

    async def write(
        self,
        build: BuildFn,
        author: pygit2.Signature,
        *,
        ref: str = MAIN,
        check_worktree: bool = True,
    ) -> CommitResult:
        """Run `build` against the current tip under the lock and commit what it returns.

        `build` raises domain errors to refuse the write (nothing is committed, and only this
        write fails) or returns None for "nothing to do". Writes waiting for the lock are
        committed in the next batch, each as its own commit on top of the one before. The branch
        compare-and-swap stays as a backstop: if it fails, the changeset is rebuilt on the new
        tip, a few times at most.
        """
        loop = asyncio.get_running_loop()
        item = _Pending(build, author, ref, check_worktree, loop.create_future())
        self._queue.append(item)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await item.future

    async def _drain(self) -> None:
        # The batch is taken only once the lock is ours, so everything that queued behind a
        # busy lock (another batch, a receive-pack) goes in together.
        while self._queue:
            async with self._lock:
                batch = [p for p in self._queue[: self.max_batch] if not p.future.done()]
                del self._queue[: self.max_batch]
                if not batch:
                    continue
                self.batches += 1
                try:
                    await asyncio.to_thread(self._commit_batch, batch)
                except BaseException as exc:  # e.g. cancelled at shutdown: nobody waits forever
                    for p in batch:
                        if p.outcome is None:
                            p.outcome = exc
                    self._listen(batch)  # shutting down: nothing more is awaited
                    self._notify_released()
                    self._answer(batch)
                    raise
            await self._finish(batch)

    def _commit_batch(self, batch: list[_Pending]) -> None:
        fd = _flock(self._lock_path)
        try:
            for _ in range(RETRIES):  # the last attempt's failures keep their RefMoved
                moved = self._commit_group(batch)
                if not moved:
                    break
                batch = moved  # built again on the branch as it is now
                for p in batch:
                    p.outcome = None
        finally:
            _unflock(fd)

    def _commit_group(self, batch: list[_Pending]) -> list[_Pending]:
        """Commit the batch as one group; the writes whose commits did not land because their
        branch moved meanwhile (their outcome RefMoved), to be built again."""
        stuck = self._recover()  # a sync left unfinished by a failed write or receive-pack
        with self.repo.grouped() as group:
            for p in batch:
                if stuck is not None and p.ref == MAIN:
                    p.outcome = stuck  # nothing moves main while its working tree lags
                    continue
                try:
                    if self.gate is not None:
                        self.gate(p.ref)
                    p.outcome = self._write_sync(p.build, p.author, p.ref, p.check_worktree)
                except FloomError as exc:  # a refused write: nothing was written
                    p.outcome = exc
                except Exception as exc:  # a bug fails its own write, not the batch
                    p.outcome = exc
                    stuck = self._recover()  # leave the next write a synced working tree
        moved: list[_Pending] = []
        for p in batch:  # the batch's sync ran last: which of each write's files did it keep
            out = p.outcome
            if isinstance(out, CommitResult) and out.sha in group.lost:
                why = group.failed[p.ref]
                if isinstance(why, RefMoved):
                    moved.append(p)
                p.outcome = why
            elif isinstance(out, CommitResult) and out.sha and p.ref == MAIN and group.kept:
                kept = set(out.unsynced) | {f for f in out.files if f in group.kept}
                p.outcome = replace(out, unsynced=tuple(sorted(kept)))
        return moved

    def _recover(self) -> FloomError | None:
        try:
            self.repo.recover()
        except FloomError as exc:
            log.error("%s", exc.message)
            return exc
        return None

    async def _finish(self, batch: list[_Pending]) -> None:
        """On the loop: run listeners in commit order, await `landed`, answer each writer."""
        landed = self._listen(batch)
        try:
            if landed and self.landed is not None:
                await self.landed(landed)
        except Exception:  # the commits landed; announcing them must not un-acknowledge them
            log.exception("announcing commits failed")
        finally:
            self._notify_released()
            self._answer(batch)

    def _listen(self, batch: list[_Pending]) -> list[tuple[CommitResult, str, str]]:
        landed = []
        for p in batch:
            if isinstance(p.outcome, CommitResult) and p.outcome.sha:
                self.commits += 1
                landed.append((p.outcome, p.ref, p.author.email))
                for listener in list(self.listeners):
                    try:
                        listener(p.outcome, p.ref)
                    except Exception:  # the commit landed; a listener must not un-acknowledge it
                        log.exception("commit listener failed for %s", p.outcome.sha)
        return landed

    def _answer(self, batch: list[_Pending]) -> None:
        for p in batch:
            if p.future.done():
                continue
            if isinstance(p.outcome, asyncio.CancelledError):
                p.future.cancel()
            elif isinstance(p.outcome, BaseException):
                p.future.set_exception(p.outcome)
            elif p.outcome is not None:
                p.future.set_result(p.outcome)

    def _notify_released(self) -> None:
        for callback in list(self.released):
            try:
                callback()
            except Exception:
                log.exception("write-lock release listener failed")

    def _write_sync(
        self, build: BuildFn, author: pygit2.Signature, ref: str, check_worktree: bool
    ) -> CommitResult:
        for attempt in range(RETRIES):
            changeset = build(self.repo)
            if changeset is None:
                return CommitResult(None)
            try:
                return self.repo.commit(changeset, author, ref=ref, check_worktree=check_worktree)
            except RefMoved:
                if attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def run_locked(self, fn: Callable[[], object]) -> object:
        """Run blocking `fn` in a thread while holding the write lock (e.g. a receive-pack)."""
        async with self.locked():
            return await asyncio.to_thread(fn)


def _flock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _unflock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)

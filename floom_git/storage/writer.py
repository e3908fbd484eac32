"""The per-workspace serialised writer: the only bridge from async code into repository writes.

One writer per workspace holds an asyncio.Lock (in-process) and an fcntl.flock on
.git/floom-writer.lock (across processes) around every commit and every receive-pack.
Blocking git work runs in a thread; listeners run on the event loop after a commit lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pygit2

from floom_git.errors import Conflict
from floom_git.storage.repo import MAIN, Changeset, CommitResult, WorkspaceRepo

BuildFn = Callable[[WorkspaceRepo], Changeset | None]
Listener = Callable[[CommitResult, str], None]
RETRIES = 3


class Writer:
    def __init__(self, repo: WorkspaceRepo) -> None:
        self.repo = repo
        self._lock = asyncio.Lock()
        self._lock_path = Path(repo.repo.path) / "floom-writer.lock"
        self.listeners: list[Listener] = []
        self.commits = 0

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the workspace write lock (in-process and on the lock file)."""
        async with self._lock:
            fd = await asyncio.to_thread(_flock, self._lock_path)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    async def write(
        self,
        build: BuildFn,
        author: pygit2.Signature,
        *,
        ref: str = MAIN,
        check_worktree: bool = True,
    ) -> CommitResult:
        """Run `build` against the current tip under the lock and commit what it returns.

        `build` raises domain errors to refuse the write (nothing is committed) or returns None
        for "nothing to do". The branch compare-and-swap stays as a backstop: if it fails, the
        changeset is rebuilt on the new tip, a few times at most.
        """
        async with self.locked():
            result = await asyncio.to_thread(self._write_sync, build, author, ref, check_worktree)
        if result.sha:
            self.commits += 1
            for listener in list(self.listeners):
                listener(result, ref)
        return result

    def _write_sync(
        self, build: BuildFn, author: pygit2.Signature, ref: str, check_worktree: bool
    ) -> CommitResult:
        for attempt in range(RETRIES):
            changeset = build(self.repo)
            if changeset is None:
                return CommitResult(None)
            try:
                return self.repo.commit(changeset, author, ref=ref, check_worktree=check_worktree)
            except Conflict as exc:
                if "moved while committing" not in exc.message or attempt == RETRIES - 1:
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

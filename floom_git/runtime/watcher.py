"""Live on-disk edits: per workspace, watchfiles watches the working tree's own entries (never
.git/) and feeds services.sync.

Two watches make one: the root folder, not recursively (its files, and folders that appear or
go), and every top-level folder but .git, recursively. git writes dozens of files under .git/
per commit; receiving their events only to drop them cost more than the commit itself. When the
set of top-level folders changes, a new folder watch is made live before the old one stops, and
a new folder is then walked, so what was written into it before its watch existed is found too.

Each batch of events reloads the workers it touches at once; the differences from `main` are
committed after a quiet period (later still while git holds .git/index.lock). The server's own
writes leave no difference from `main`, so they commit nothing: suppression is by content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio.to_thread
from watchfiles import Change, DefaultFilter, awatch

from floom_git.config import Settings
from floom_git.errors import Conflict
from floom_git.services import registry, sync
from floom_git.services.workspaces import Workspace, WorkspaceManager

log = logging.getLogger("floom_git.watcher")

PROBE_EVERY = 0.1
SETTLE_MAX = 30.0  # a stale index.lock must not hold edits back forever
RETRY_AFTER = 1.0
THREADS_PER_WATCH = 2  # each of its two watches blocks an anyio worker thread while waiting

Changes = set[tuple[Change, str]]
Handler = Callable[[Changes], Awaitable[None]]


class _Stream:
    """One watchfiles watch consumed in a task. It is live once it reports its probe: a folder
    it watches, whose metadata the watch itself touches (a folder's own `modified` event never
    means content)."""

    def __init__(self, owner: WorkspaceWatch, paths: list[Path], recursive: bool,
                 handle: Handler) -> None:
        self.probe = str(paths[0] if recursive else owner.git_dir)
        self.stop = asyncio.Event()
        self.live = asyncio.Event()
        owner.probes.add(self.probe)
        gen = awatch(*paths, recursive=recursive, watch_filter=owner.filter, stop_event=self.stop)
        self.task = asyncio.create_task(self._consume(owner, gen, handle))

    async def _consume(self, owner: WorkspaceWatch, gen: AsyncIterator[Changes],
                       handle: Handler) -> None:
        async for changes in gen:
            rest: Changes = set()
            for change, path in changes:
                if change == Change.modified and path in owner.probes:
                    if path == self.probe:
                        self.live.set()
                    continue
                rest.add((change, path))
            if rest:
                owner.events += len(rest)
                await handle(rest)

    async def until_live(self) -> None:
        while not self.live.is_set():
            if self.task.done():
                self.task.result()  # raises what ended it
                raise RuntimeError("the file watch ended before it was live")
            with contextlib.suppress(OSError):
                os.utime(self.probe)
            live = asyncio.ensure_future(self.live.wait())
            try:
                await asyncio.wait({self.task, live}, timeout=PROBE_EVERY,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                live.cancel()

    async def close(self) -> None:
        """Stop it (the watch thread sees the stop event within a step) and wait for it."""
        self.stop.set()
        await asyncio.gather(self.task, return_exceptions=True)


class WorkspaceWatch:
    """The watch on one workspace's working tree and its pending paths."""

    def __init__(self, ws: Workspace, settings: Settings) -> None:
        self.ws = ws
        self.root = ws.path.resolve()
        self.git_dir = ws.git_dir.resolve()
        self.quiet = max(settings.sync_quiet_seconds, 0.0)
        self.ready = asyncio.Event()  # set once the watch is live (a test waits on it)
        self.events = 0  # file events received; nothing under .git/ ever counts
        self.probes: set[str] = set()  # folders whose own metadata events prove a watch live
        self._ignore = DefaultFilter(ignore_paths=[str(settings.spool_dir.resolve())])
        self._folders: tuple[str, ...] = ()  # top-level folders the folder watch covers
        self._folders_changed = asyncio.Event()
        self._streams: set[_Stream] = set()
        self._pending: set[str] = set()
        self._full = True  # reconcile the whole tree once live: edits made while we were down
        self._dirty = asyncio.Event()
        self._last = 0.0
        self._stop = asyncio.Event()
        self._syncing = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def folders(self) -> tuple[str, ...]:
        """The top-level folders watched recursively now (never .git)."""
        return self._folders

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(), name=f"watch:{self.ws.id}"),
            asyncio.create_task(self._commit_loop(), name=f"sync:{self.ws.id}"),
        ]

    async def stop(self) -> None:
        """Stop watching; a sync already committing is let finish (its git work runs in a
        thread that a cancel would not stop, only orphan)."""
        self._stop.set()
        self._dirty.set()
        for stream in list(self._streams):
            stream.stop.set()
        watch_task, commit_task = self._tasks
        watch_task.cancel()
        if not self._syncing:
            commit_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def filter(self, change: Change, path: str) -> bool:
        if path in self.probes:
            return True
        return self._ignore(change, path) and not os.path.basename(path).startswith(".floom-")

    def _top_folders(self) -> tuple[str, ...]:
        """The working tree's top-level folders (not .git, not links), sorted."""
        with os.scandir(self.root) as entries:
            return tuple(sorted(e.name for e in entries
                                if e.name != ".git" and e.is_dir(follow_symlinks=False)))

    async def _watch(self) -> None:
        # Its watches wait for events in anyio worker threads: they bring their own, so that
        # past anyio's default of 40 no watch waits for a thread (and never becomes live).
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens += THREADS_PER_WATCH
        try:
            restarted = False
            while not self._stop.is_set():
                try:
                    await self._life(restarted)
                except Exception:
                    log.exception("workspace %s: file watch failed; restarting it", self.ws.id)
                if self._stop.is_set():
                    return
                # A watch ended by itself or failed: events were missed while it was down.
                self.ready.clear()
                restarted = True
                await asyncio.sleep(RETRY_AFTER)
        finally:
            limiter.total_tokens -= THREADS_PER_WATCH

    def _stream(self, paths: list[Path], recursive: bool, handle: Handler) -> _Stream:
        stream = _Stream(self, paths, recursive, handle)
        self._streams.add(stream)
        return stream

    async def _life(self, restarted: bool) -> None:
        """Watch the root, and the top-level folders with one watch per set of them, until a
        watch ends by itself (the caller then starts over) or everything stops."""
        self.probes = set()
        root = self._stream([self.root], False, self._root_batch)
        folders: _Stream | None = None
        try:
            await root.until_live()
            while not self._stop.is_set():
                self._folders_changed.clear()
                names = self._top_folders()
                fresh = None
                if names:
                    fresh = self._stream([self.root / n for n in names], True, self._batch)
                    await fresh.until_live()
                if folders is not None:  # only once its successor is live: no gap
                    await folders.close()
                    self._streams.discard(folders)
                appeared = set(names) - set(self._folders)
                folders, self._folders = fresh, names
                if restarted:
                    self._full, restarted = True, False
                    self._dirty.set()
                elif appeared and self.ready.is_set():
                    # Files may have been written into them before their watch was live.
                    self._pending |= appeared
                    self._last = asyncio.get_running_loop().time()
                    self._dirty.set()
                self.ready.set()
                waits = [root.task, asyncio.ensure_future(self._folders_changed.wait()),
                         asyncio.ensure_future(self._stop.wait())]
                if folders is not None:
                    waits.append(folders.task)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waits[1].cancel()
                    waits[2].cancel()
                for stream in (root, folders):
                    if stream is not None and stream.task.done():
                        stream.task.result()  # raises what ended it
                        return
        finally:
            streams, self._streams = list(self._streams), set()
            await asyncio.gather(*(s.close() for s in streams))

    async def _root_batch(self, changes: Changes) -> None:
        await self._batch(changes)
        if any(change != Change.modified for change, _ in changes):
            if self._top_folders() != self._folders:
                self._folders_changed.set()

    async def _batch(self, changes: Changes) -> None:
        """Record the paths of one batch; their final state is read by stat at reconcile time."""
        rels: set[str] = set()
        prefix = f"{self.root}/"  # watchfiles names paths under the folders it was given
        for _, path in changes:
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix):].rstrip("/")
            if rel and not sync.is_transient(rel):
                rels.add(rel)
        if not rels:
            return
        self._pending |= rels
        self._last = asyncio.get_running_loop().time()
        self._dirty.set()
        # Shown in the API at once (an invalid manifest as status "error"), committed later.
        if registry.owners(rels):  # most batches are contexts and the like: no thread hop
            await asyncio.to_thread(self.ws.workers.reload_paths, rels)

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            wait = self._last + self.quiet - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if (self.git_dir / "index.lock").exists() and loop.time() - started < SETTLE_MAX:
                await asyncio.sleep(max(min(self.quiet, 0.2), 0.05))
                continue
            return

    async def _commit_loop(self) -> None:
        await self.ready.wait()
        self._dirty.set()
        while True:
            await self._dirty.wait()
            if self._stop.is_set():
                return
            await self._settle()
            full, self._full = self._full, False
            batch, self._pending = self._pending, set()
            self._dirty.clear()
            self._syncing = True
            failed = True
            try:
                result = await sync.reconcile(self.ws, None if full else batch, reloaded=True)
                failed = False
                if result.changed_again:  # saved again while we committed: another round
                    self._pending |= set(result.changed_again)
                    self._last = asyncio.get_running_loop().time()
                    self._dirty.set()
            except Conflict as exc:  # the disk changed while committing: wait for quiet again
                log.info("workspace %s: sync postponed: %s", self.ws.id, exc.message)
            except Exception:
                log.exception("workspace %s: sync of on-disk edits failed; retrying", self.ws.id)
            finally:
                self._syncing = False
            if failed:
                self._pending |= batch
                self._full = self._full or full
                self._last = asyncio.get_running_loop().time()
                self._dirty.set()
                await asyncio.sleep(max(self.quiet, RETRY_AFTER))


class Watcher:
    """Watches every open workspace, including ones created while the server runs."""

    def __init__(self, manager: WorkspaceManager, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings
        self._watches: dict[str, WorkspaceWatch] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # watchfiles logs every batch at INFO (our own writes and the probes too); the sync
        # service logs what matters, the commits.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        self._loop = asyncio.get_running_loop()
        self.manager.on_open.append(self._opened)
        self.manager.on_close.append(self._closed)
        for ws in self.manager.all():
            self._add(ws)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.manager.on_open.remove(self._opened)
        with contextlib.suppress(ValueError):
            self.manager.on_close.remove(self._closed)
        self._loop = None
        watches, self._watches = list(self._watches.values()), {}
        await asyncio.gather(*(w.stop() for w in watches), *self._stopping)

    def get(self, ws_id: str) -> WorkspaceWatch | None:
        return self._watches.get(ws_id)

    def _opened(self, ws: Workspace) -> None:
        # Workspaces are opened from worker threads too; start watching on the event loop.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._add, ws)

    def _closed(self, ws: Workspace) -> None:
        # Called under the workspace's writer lock while it is deleted: stop the watch in the
        # background (its sync loop may be waiting for that very lock).
        watch = self._watches.pop(ws.id, None)
        if watch is None or self._loop is None:
            return
        task = self._loop.create_task(watch.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _add(self, ws: Workspace) -> None:
        if self._loop is None or ws.id in self._watches:
            return
        watch = WorkspaceWatch(ws, self.settings)
        self._watches[ws.id] = watch
        watch.start()

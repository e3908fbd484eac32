"""Live on-disk edits: one watchfiles `awatch` per workspace working tree, feeding services.sync.

Each batch of events reloads the workers it touches at once; the differences from `main` are
committed after a quiet period (later still while git holds .git/index.lock). The server's own
writes leave no difference from `main`, so they commit nothing: suppression is by content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch

from floom_git.config import Settings
from floom_git.errors import Conflict
from floom_git.services import sync
from floom_git.services.workspaces import Workspace, WorkspaceManager

log = logging.getLogger("floom_git.watcher")

PROBE = "floom-watch-probe"  # in .git/: touched until the watch reports it, i.e. is live
PROBE_EVERY = 0.1
SETTLE_MAX = 30.0  # a stale index.lock must not hold edits back forever
RETRY_AFTER = 1.0


class WorkspaceWatch:
    """The watch on one workspace's working tree and its pending paths."""

    def __init__(self, ws: Workspace, settings: Settings) -> None:
        self.ws = ws
        self.root = ws.path.resolve()
        self.quiet = max(settings.sync_quiet_seconds, 0.0)
        self.ready = asyncio.Event()  # set once the watch is live (a test waits on it)
        self._git_dir = Path(ws.repo.repo.path)
        self._probe = self._git_dir.resolve() / PROBE
        self._ignore = DefaultFilter(ignore_paths=[str(settings.spool_dir.resolve())])
        self._pending: set[str] = set()
        self._full = True  # reconcile the whole tree once live: edits made while we were down
        self._dirty = asyncio.Event()
        self._last = 0.0
        self._stop = asyncio.Event()
        self._syncing = False
        self._tasks: list[asyncio.Task[None]] = []

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
        watch_task, commit_task = self._tasks
        watch_task.cancel()
        if not self._syncing:
            commit_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(OSError):
            self._probe.unlink()

    def _filter(self, change: Change, path: str) -> bool:
        if path == str(self._probe):
            return True
        return self._ignore(change, path) and not Path(path).name.startswith(".floom-")

    async def _watch(self) -> None:
        restarted = False
        while not self._stop.is_set():
            prober = asyncio.create_task(self._probe_until_ready(restarted))
            try:
                async for changes in awatch(
                    self.root, watch_filter=self._filter, stop_event=self._stop
                ):
                    await self._batch(changes)
                if not self._stop.is_set():  # the watch ended by itself: never restart in a spin
                    self.ready.clear()
                    restarted = True
                    await asyncio.sleep(RETRY_AFTER)
            except Exception:
                log.exception("workspace %s: file watch failed; restarting it", self.ws.id)
                self.ready.clear()
                restarted = True
                await asyncio.sleep(RETRY_AFTER)
            finally:
                prober.cancel()

    async def _probe_until_ready(self, restarted: bool) -> None:
        while not self.ready.is_set():
            with contextlib.suppress(OSError):
                self._probe.write_bytes(b"")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ready.wait(), PROBE_EVERY)
        with contextlib.suppress(OSError):
            self._probe.unlink()
        if restarted:  # events were missed while the watch was down
            self._full = True
            self._dirty.set()

    async def _batch(self, changes: set[tuple[Change, str]]) -> None:
        """Record the paths of one batch; their final state is read by stat at reconcile time."""
        rels: set[str] = set()
        for _, path in changes:
            if path == str(self._probe):
                self.ready.set()
                continue
            try:
                rel = Path(path).relative_to(self.root).as_posix()
            except ValueError:
                continue
            if rel != "." and not sync.is_transient(rel):
                rels.add(rel)
        if not rels:
            return
        self._pending |= rels
        self._last = asyncio.get_running_loop().time()
        self._dirty.set()
        # Shown in the API at once (an invalid manifest as status "error"), committed later.
        await asyncio.to_thread(self.ws.workers.reload_paths, rels)

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            wait = self._last + self.quiet - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if (self._git_dir / "index.lock").exists() and loop.time() - started < SETTLE_MAX:
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
                result = await sync.reconcile(self.ws, None if full else batch)
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
        # watchfiles logs every batch at INFO (our own writes and the probe too); the sync
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

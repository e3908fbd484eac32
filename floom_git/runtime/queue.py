"""The run engine: one FIFO queue for the server with a concurrency cap, the task that drives each
run (start -> execute -> finish), cancellation, restart recovery, and the approval-expiry sweep.

Restart recovery (DESIGN invariant 8): at start-up every workspace's record store is loaded;
runs still `running` fail with `interrupted_by_restart`, `queued` runs are queued again in their
original order, and `pending_approval` runs stay pending (their approval is in the record).
On shutdown running processes are killed and their records are left `running`, so the next
start treats them exactly like a crash.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
from collections.abc import Callable

from floom_git.config import Settings
from floom_git.errors import FloomError, NotFound
from floom_git.runtime.agent_runs import AgentRunner
from floom_git.runtime.executor import Executor, reap_orphans
from floom_git.runtime.executors import LocalExecutor, RunExecutor, RunOrder
from floom_git.schemas.run import TERMINAL, RunRecord
from floom_git.services import approvals, run_inputs, runs
from floom_git.services.actor import SYSTEM
from floom_git.services.run_records import RunStore
from floom_git.services.secrets import SecretStore
from floom_git.services.workspaces import Workspace, WorkspaceManager

log = logging.getLogger("floom_git.runs")
Finished = Callable[[Workspace, RunRecord], None]
WORKSPACE_DELETED = "workspace_deleted"


class RunEngine:
    """Implements services.run_records.Hooks for every workspace it is attached to. Workspaces
are named by their internal id (`Workspace.uid`), so a run never lands in a workspace created
later under the same name."""

    def __init__(self, settings: Settings, manager: WorkspaceManager, secrets: SecretStore) -> None:
        self.settings = settings
        self.manager = manager
        self.secrets = secrets
        self.executor = Executor(settings)
        # Where runs execute (runtime/executors.py); the app swaps in Celery when configured.
        self.backend: RunExecutor = LocalExecutor(settings, self.executor)
        self.agents = AgentRunner(settings, secrets)
        self._queue: collections.deque[tuple[str, str]] = collections.deque()
        self._running: dict[str, tuple[asyncio.Task[None], asyncio.Event, str]] = {}
        self._cancel_codes: dict[str, str] = {}  # run id -> error_code of a server-side cancel
        self._attach_lock = asyncio.Lock()
        self._stores: dict[str, RunStore] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._loading: set[asyncio.Task[None]] = set()  # cold starts reading older records
        self._stopping = False
        self.on_finished: list[Finished] = []

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.backend.start()
        for ws in self.manager.all():
            try:
                await self._attach(ws)  # a cold start reads older records after start-up
            except Exception as exc:  # its run spool cannot be read: fence it, serve the rest
                self.manager.fence(ws.id, exc)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._loading):
            task.cancel()
        await asyncio.gather(*self._loading, return_exceptions=True)
        self._queue.clear()
        tasks = [task for task, _, _ in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.backend.stop()
        for store in list(self._stores.values()):
            await store.close()

    async def attach(self, ws: Workspace, newest: int | None = None) -> RunStore:
        """The workspace's record store, loaded and recovered on first use, once it holds every
        record (with `newest`: once its `newest` newest runs and the count are final; see
        RunStore.covers). Raises Unavailable when its records could not be read."""
        store = await self._attach(ws)
        await store.ready(newest)
        return store

    async def _attach(self, ws: Workspace) -> RunStore:
        store = ws.runs
        if store.attached:
            return store
        async with self._attach_lock:
            if store.attached:
                return store
            if self.manager.by_uid(ws.uid) is not ws:
                raise NotFound("Workspace not found")  # deleted while this request ran
            if store.engine is not self:  # opened before the app wired the engine in
                raise RuntimeError(f"workspace {ws.id} was opened without its run engine")
            spooled = await asyncio.to_thread(store.load)
            for pgid in await asyncio.to_thread(reap_orphans, store.spool):
                log.warning(
                    "workspace %s: killed process group %d left by a crashed run", ws.id, pgid
                )
            queued = runs.recover(ws, spooled)
            await asyncio.to_thread(self.agents.sweep, ws)
            store.attached = True
            self._stores[ws.uid] = store
            self._resume(ws, queued)
            if not store.complete:
                task = asyncio.get_running_loop().create_task(self._load_rest(ws, store))
                self._loading.add(task)
                task.add_done_callback(self._loading.discard)
        return store

    async def _load_rest(self, ws: Workspace, store: RunStore) -> None:
        """After start-up: read the records it left for later, recover the runs among them that
        were running or queued, and save the index for the next start-up when they came from
        floom/runs (no cache covered them)."""
        try:
            entries = await asyncio.to_thread(store.read_rest)
        except Exception as exc:
            log.exception("workspace %s: reading its run records failed", ws.id)
            store.fail_rest(exc)
            return
        added = store.add_rest(entries)
        self._resume(ws, runs.recover(ws, [], entries=added))
        snapshot = store.cache_snapshot() if store.cold else None
        if snapshot is not None:
            await asyncio.to_thread(store.write_cache, *snapshot)

    def _resume(self, ws: Workspace, queued: list[str]) -> None:
        for run_id in queued:
            self.submit(ws.uid, run_id)
        if queued:
            log.info("workspace %s: %d queued runs resumed after restart", ws.id, len(queued))

    async def drop_workspace(self, ws: Workspace) -> None:
        """Stop everything of a workspace being deleted (it has already left the manager): its
        queued runs are cancelled and its running runs stopped, all recorded `cancelled` with
        error_code `workspace_deleted` while its repository still exists; then its record store
        is closed and its spool removed, so nothing of it runs or waits any more."""
        store = self._stores.pop(ws.uid, None) or ws.runs
        queued = [rid for uid, rid in self._queue if uid == ws.uid]
        self._queue = collections.deque(item for item in self._queue if item[0] != ws.uid)
        for run_id in queued:
            try:
                runs.cancel(ws, run_id, SYSTEM, code=WORKSPACE_DELETED,
                            message="The workspace was deleted")
            except FloomError:
                pass  # ended meanwhile
        stopping = []
        for run_id, (task, cancel, uid) in list(self._running.items()):
            if uid == ws.uid:
                self._cancel_codes[run_id] = WORKSPACE_DELETED
                cancel.set()
                stopping.append(task)
        await asyncio.gather(*stopping, return_exceptions=True)
        await store.close()
        await asyncio.to_thread(shutil.rmtree, store.spool, True)

    # -- Hooks ----------------------------------------------------------------------------------
    def submit(self, ws_id: str, run_id: str) -> None:
        if self._stopping or self.manager.by_uid(ws_id) is None:
            return  # the workspace is gone (or going): its run never starts
        self._queue.append((ws_id, run_id))
        self._pump()

    def cancel(self, ws_id: str, run_id: str) -> bool:
        running = self._running.get(run_id)
        if running is not None:
            running[1].set()
            return True
        for i, item in enumerate(self._queue):
            if item == (ws_id, run_id):
                del self._queue[i]
                return True
        return False

    def queue_position(self, run_id: str) -> int | None:
        for i, (_ws, rid) in enumerate(self._queue):
            if rid == run_id:
                return i + 1
        return None

    def finished(self, ws_id: str, record: RunRecord) -> None:
        ws = self.manager.by_uid(ws_id)
        if ws is None:  # deleted: nobody is notified about it any more
            return
        log.info("run %s of %s/%s %s: %s%s", record.id, ws.id, record.worker_id,
                 "ended" if record.status in TERMINAL else "waits", record.status,
                 f" ({record.error_code})" if record.error_code else "")
        if record.status in TERMINAL:
            self.agents.forget(ws, record.id)  # an agent parked for approval never resumes now
        for listener in list(self.on_finished):
            try:
                listener(ws, record)
            except Exception:
                log.exception("run-finished listener failed for %s", record.id)

    # -- execution ------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self._running)

    def _pump(self) -> None:
        while self._queue and len(self._running) < max(1, self.settings.max_concurrent_runs):
            ws_id, run_id = self._queue.popleft()
            cancel = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._drive(ws_id, run_id, cancel))
            self._running[run_id] = (task, cancel, ws_id)

    async def _drive(self, ws_id: str, run_id: str, cancel: asyncio.Event) -> None:
        record: RunRecord | None = None
        ws: Workspace | None = None
        try:
            ws = self.manager.by_uid(ws_id)
            if ws is None:
                return
            record = runs.start(ws, run_id)
            if record is None:
                return
            store = ws.runs
            rec = record

            def emit(level: str, message: str) -> None:
                store.append_log(rec, level, message, runs.iso(runs.now()))

            emit("info", f"Run started (worker {record.worker_id} at {record.worker_sha[:7]})")
            log.info("run %s of %s/%s started", run_id, ws.id, record.worker_id)
            manifest, _sha = run_inputs.committed_manifest(ws, record.worker_id, record.worker_sha)
            declared = list(manifest.exec.secrets)
            values = await asyncio.to_thread(self.secrets.values, ws.uid, declared)
            missing = [name for name in declared if name not in values]
            if missing:
                runs.finish(
                    ws,
                    record,
                    runs.Outcome(
                        "failed",
                        error_code="missing_secret",
                        error=f"Secrets not set: {', '.join(missing)} (POST /api/secrets/<name>)",
                    ),
                    manifest,
                )
                return
            if manifest.mode == "agent":  # the loop runs here; its tools act through the services
                agent_outcome = await self.agents.run(ws, record, manifest, values, emit, cancel)
                if agent_outcome is None:
                    return  # parked until a person decides (approvals.py resumes it)
                outcome = agent_outcome
            else:
                outcome = await self.backend.execute(RunOrder(ws, record, manifest, values), emit,
                                                      cancel)
            code = self._cancel_codes.pop(run_id, None)
            if code is not None and outcome.status == "cancelled":
                outcome = runs.Outcome(
                    "cancelled",
                    error_code=code,
                    error="The workspace was deleted",
                    exit_code=outcome.exit_code,
                )
            runs.finish(ws, record, outcome, manifest)
        except asyncio.CancelledError:
            raise  # shutdown: the record stays `running`; the next start recovers it
        except Exception as exc:
            log.exception("run %s failed inside the engine", run_id)
            if ws is not None and record is not None and not record.ended:
                message = (
                    exc.message if isinstance(exc, FloomError) else f"{type(exc).__name__}: {exc}"
                )
                runs.fail(ws, record, "run_execution_exception", message)
        finally:
            self._running.pop(run_id, None)
            self._cancel_codes.pop(run_id, None)
            if not self._stopping:
                self._pump()

    # -- approvals ------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            for uid, store in list(self._stores.items()):
                ws = self.manager.by_uid(uid)
                if ws is None:  # the workspace was deleted
                    self._stores.pop(uid, None)
                    continue
                if not store.complete:
                    continue  # a cold start is still reading its records
                try:
                    approvals.expire_due(ws)
                except Exception:
                    log.exception("approval expiry sweep failed in workspace %s", ws.id)
            await asyncio.sleep(self.settings.approval_sweep_seconds)

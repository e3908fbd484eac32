"""Run records of one workspace: the live record of each run, its index entry and its place in
the run log, kept in step. What is durable where and when is storage/run_log.py's (the spool,
fsync'd before a change is acknowledged, and the floom/runs committer); the index and its
start-up are services/run_index.py's. This module ties them together for the state machine
(services/runs.py), the run engine (given at construction, used once it has attached the store:
see Hooks) and the live streams (`wait`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from floom_git.config import Settings
from floom_git.errors import NotFound
from floom_git.schemas.run import IndexEntry, LogLine, RunRecord
from floom_git.services.run_index import HEAD_RUNS, RunIndex
from floom_git.storage.repo import WorkspaceRepo
from floom_git.storage.run_log import (
    APPEND_DIR,
    ARTIFACTS,
    LOGS,
    RECORD,
    RUNS_DIR,
    SPOOL_RECORD,
    RunLog,
    encode_record,
    record_dir,
)
from floom_git.storage.spool import CommitTimer
from floom_git.storage.writer import Writer


class Owner(Protocol):
    """The workspace a store belongs to (services/workspaces.py's Workspace), as far as the
    store needs it: it is made with the workspace, so it cannot import it."""

    id: str
    uid: str
    repo: WorkspaceRepo
    writer: Writer
    settings: Settings

    @property
    def runs(self) -> RunStore: ...


__all__ = ["APPEND_DIR", "ARTIFACTS", "HEAD_RUNS", "LOGS", "RECORD", "RUNS_DIR", "SPOOL_RECORD",
           "Hooks", "RunStore", "encode_record", "record_dir"]


class Hooks(Protocol):
    """What the run engine (runtime/queue.py) offers the services: dispatch and cancellation."""

    def submit(self, ws_id: str, run_id: str) -> None: ...

    def cancel(self, ws_id: str, run_id: str) -> bool: ...

    def queue_position(self, run_id: str) -> int | None: ...

    def finished(self, ws_id: str, record: RunRecord) -> None: ...


class RunStore:
    """The run records of one workspace (index, live records, spool, commits). Every workspace
    has one, as `Workspace.runs`."""

    def __init__(self, ws: Owner, engine: Hooks | None = None) -> None:
        self.ws = ws
        self.settings = ws.settings
        self.log = RunLog(ws.repo, ws.writer, ws.settings.spool_dir / ws.uid,  # never reused
                          git_binary=ws.settings.git_binary,
                          max_log_lines=ws.settings.run_max_log_lines,
                          commit_delay=ws.settings.run_commit_delay,
                          what=f"run records of workspace {ws.id}")
        self.runs = RunIndex(self.log, f"workspace {ws.id}")
        self._passing: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # see append_passing
        self._waiters: dict[str, asyncio.Event] = {}
        self.engine = engine  # the run engine (wired by the app through the manager)
        self.attached = False  # loaded and recovered by the engine, which now dispatches its runs

    @property
    def hooks(self) -> Hooks | None:
        """The run engine once it has attached this store; None before (runs created meanwhile
        are recovered as queued when it attaches)."""
        return self.engine if self.attached else None

    @classmethod
    def of(cls, ws: Owner) -> RunStore:
        """The store of `ws` (its `runs` field)."""
        return ws.runs

    # -- what the parts hold --------------------------------------------------------------------
    @property
    def spool(self) -> Path:
        return self.log.spool

    @property
    def live(self) -> dict[str, RunRecord]:
        return self.log.live

    @property
    def commits(self) -> CommitTimer:
        return self.log.commits

    @property
    def index(self) -> dict[str, IndexEntry]:
        return self.runs.index

    @property
    def loaded(self) -> bool:
        return self.runs.loaded

    @property
    def complete(self) -> bool:
        return self.runs.complete

    @property
    def cold(self) -> bool:
        return self.runs.cold

    # -- start-up -----------------------------------------------------------------------------
    def load(self) -> list[RunRecord]:
        """Build the index of the newest days from floom/runs (the rest: see read_rest)
        and lay the spool over it (blocking; call once at start-up, in a thread). Returns the
        spool records, which the caller re-registers."""
        self.runs.load()
        return self.log.spooled()

    def read_rest(self) -> list[IndexEntry]:
        return self.runs.read_rest()

    def add_rest(self, entries: list[IndexEntry]) -> list[IndexEntry]:
        return self.runs.add_rest(entries)

    def fail_rest(self, exc: BaseException) -> None:
        self.runs.fail_rest(exc)

    def covers(self, newest: int) -> bool:
        return self.runs.covers(newest)

    async def ready(self, newest: int | None = None) -> None:
        await self.runs.ready(newest)

    def write_cache(self, tip: str | None = None, entries: list[IndexEntry] | None = None) -> None:
        """Save the index as of floom/runs' tip, so the next start-up reads one file."""
        if tip is None:
            tip = self.log.tip()
            if tip is None:
                return
            entries = list(self.index.values())  # uncommitted states are in the spool too
        self.log.write_cache(tip, entries or [])

    def cache_snapshot(self) -> tuple[str, list[IndexEntry]] | None:
        """What write_cache would save now, taken on the loop (the index changes there)."""
        tip = self.log.tip()
        return None if tip is None else (tip, list(self.index.values()))

    # -- reads ----------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        """The current record; NotFound when there is no such run."""
        record = self.live.get(run_id)
        if record is not None:
            return record
        entry = self.index.get(run_id)
        record = None if entry is None else self.log.committed(entry)
        if record is None:
            raise NotFound("Run not found")
        return record

    def exists(self, run_id: str) -> bool:
        return run_id in self.index

    def logs(self, run_id: str) -> list[LogLine]:
        return self.log.logs(self.get(run_id))

    def read_file(self, run_id: str, rel: str) -> bytes | None:
        """A file of the run's folder (e.g. artifacts/x.md), from the spool if still there."""
        return self.log.read_file(self.get(run_id), rel)

    def entries(self, worker_id: str | None = None) -> Iterator[IndexEntry]:
        """Index entries newest first (by created_at, then id)."""
        return self.runs.entries(worker_id)

    def entries_before(self, cursor: tuple[str, str],
                       worker_id: str | None = None) -> Iterator[IndexEntry]:
        return self.runs.entries_before(cursor, worker_id)

    def count(self, worker_id: str | None = None) -> int:
        return self.runs.count(worker_id)

    # -- writes -----------------------------------------------------------------------------------
    def put(self, record: RunRecord, *, durable: bool = True) -> None:
        """Make `record` the current state: spool it (fsync'ed when `durable`), index it, and
        schedule its commit. Returns once the state survives a crash."""
        self.log.put(record, durable=durable)
        self.runs.add(record)
        self.notify(record.id)

    def append_log(self, record: RunRecord, level: str, message: str, timestamp: str,
                   event: dict[str, Any] | None = None) -> LogLine | None:
        """Add a log line to a live run (spool file + memory); None once the cap is reached.
        `event` is the step an agent run's line reports (see LogLine)."""
        line = self.log.append_log(record, level, message, timestamp, event)
        if line is not None:
            self.notify(record.id)
        return line

    def append_passing(self, record: RunRecord, event: dict[str, Any]) -> None:
        """An event for the run's live streams only (an agent's text as it arrives), numbered
        with the logs but never stored: `drop_passing` forgets it once a log line holds it."""
        record.seq += 1
        self._passing.setdefault(record.id, []).append((record.seq, event))
        self.notify(record.id)

    def passing(self, run_id: str) -> list[tuple[int, dict[str, Any]]]:
        return list(self._passing.get(run_id, ()))

    def drop_passing(self, run_id: str) -> None:
        self._passing.pop(run_id, None)

    def close_logs(self, run_id: str) -> None:
        self._passing.pop(run_id, None)
        self.log.close_logs(run_id)

    def spool_dir(self, run_id: str) -> Path:
        return self.spool / run_id

    def append_line(self, run_id: str, name: str, line: bytes) -> None:
        """Append one line to runs/<date>/<run_id>/<name> (durable now, committed soon)."""
        self.log.append_line(self.get(run_id), name, line)

    # -- notification ---------------------------------------------------------------------------
    def notify(self, run_id: str) -> None:
        event = self._waiters.pop(run_id, None)
        if event is not None:
            event.set()

    async def wait(self, run_id: str, seen_seq: int, timeout: float) -> None:
        """Return when the run has an event newer than `seen_seq`, or after `timeout`."""
        record = self.live.get(run_id)
        if record is not None and record.seq > seen_seq:
            return
        event = self._waiters.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    # -- commits --------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Commit every changed record now (one commit); then drop what the spool no longer
        needs."""
        await self.log.flush()

    async def close(self) -> None:
        await self.log.close(self.ws.id)
        if self.runs.complete and not self.runs.failed:
            await asyncio.to_thread(self.write_cache)

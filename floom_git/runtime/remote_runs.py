"""The home node's side of runs dispatched to remote executors: for each attempt, who claimed it
(exactly one delivery may), when it last reported, how many log lines arrived, whether a cancel
is asked, and the result. The executor routes (http/handlers/executor_api.py) feed it; the
Celery executor waits on it. In memory: a restart fails running runs (interrupted_by_restart)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from floom_git import paths
from floom_git.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from floom_git.runtime.remote_wire import LogBatch, ResultIn
from floom_git.services.runs import Outcome

log = logging.getLogger("floom_git.runs")
LogFn = Callable[[str, str], None]


@dataclass
class RemoteRun:
    """One attempt of one dispatched run."""

    run_id: str
    attempt: int
    emit: LogFn  # appends a line to the run's log (the engine's)
    artifacts_dir: Path  # where uploaded artifacts land (the run's spool)
    clock: Callable[[], float] = time.monotonic
    dispatched_at: float = 0.0
    claimed_by: str | None = None
    last_seen: float = 0.0
    lines: int = 0
    artifact_bytes: int = 0
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome | None = None

    def seen(self) -> None:
        self.last_seen = self.clock()
        self.changed.set()


class RemoteRuns:
    def __init__(self, max_artifact_bytes: int) -> None:
        self._runs: dict[str, RemoteRun] = {}
        self.max_artifact_bytes = max_artifact_bytes
        self.duplicates = 0  # deliveries refused because another one had claimed the attempt

    def open(self, run_id: str, attempt: int, emit: LogFn, artifacts_dir: Path) -> RemoteRun:
        shutil.rmtree(artifacts_dir, ignore_errors=True)  # what an earlier attempt uploaded
        run = RemoteRun(run_id, attempt, emit, artifacts_dir)
        run.dispatched_at = run.last_seen = run.clock()
        self._runs[run_id] = run
        return run

    def close(self, run: RemoteRun) -> None:
        if self._runs.get(run.run_id) is run:
            del self._runs[run.run_id]

    def _get(self, run_id: str, attempt: int) -> RemoteRun:
        run = self._runs.get(run_id)
        if run is None or run.attempt != attempt:
            raise NotFound(f"Run {run_id} is not waiting for an executor (it ended, or was "
                           "dispatched again)")
        return run

    def _mine(self, run_id: str, attempt: int, executor: str) -> RemoteRun:
        run = self._get(run_id, attempt)
        if run.claimed_by != executor:
            raise Conflict(f"Run {run_id} is claimed by another executor")
        run.seen()
        return run

    # -- what executors report ------------------------------------------------------------------
    def claim(self, run_id: str, attempt: int, executor: str) -> RemoteRun:
        """Give the attempt to `executor` (again, if it asks twice); Conflict for any other
        delivery of it: a duplicate delivery never runs."""
        run = self._get(run_id, attempt)
        if run.claimed_by is None and run.cancel.is_set():
            raise Conflict(f"Run {run_id} was cancelled before an executor took it")
        if run.claimed_by is None:
            run.claimed_by = executor
            run.emit("info", f"Claimed by executor {executor} (attempt {attempt})")
        elif run.claimed_by != executor:
            self.duplicates += 1
            log.info("run %s: delivery to %s ignored (claimed by %s)", run_id, executor,
                     run.claimed_by)
            raise Conflict(f"Run {run_id} is already claimed by another executor; this delivery "
                           "is a duplicate and must not run")
        run.seen()
        return run

    async def heartbeat(self, run_id: str, attempt: int, executor: str, hold: float) -> bool:
        """The executor is alive; waits up to `hold` seconds for a cancel. True: stop the run."""
        run = self._mine(run_id, attempt, executor)
        if not run.cancel.is_set():
            try:
                await asyncio.wait_for(run.cancel.wait(), hold)
            except TimeoutError:
                pass
        run.seen()
        return run.cancel.is_set()

    def logs(self, run_id: str, attempt: int, executor: str, batch: LogBatch) -> int:
        """Append the lines not received yet; returns how many lines this attempt has."""
        run = self._mine(run_id, attempt, executor)
        skip = max(0, run.lines - batch.first)
        for line in batch.lines[skip:]:
            run.emit(line.level, line.message)
        run.lines = max(run.lines, batch.first + len(batch.lines))
        return run.lines

    def artifact(self, run_id: str, attempt: int, executor: str, rel: str, data: bytes) -> None:
        run = self._mine(run_id, attempt, executor)
        if not rel.startswith("out/") or not paths.is_clean_relpath(rel):
            raise InvalidInput(f"path: '{rel[:200]}' is not a clean path under out/")
        target = run.artifacts_dir / rel
        before = target.stat().st_size if target.is_file() else 0  # a resent upload
        if run.artifact_bytes - before + len(data) > self.max_artifact_bytes:
            raise PayloadTooLarge(f"artifacts of run {run_id} may hold {self.max_artifact_bytes} "
                                  "bytes in all")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        run.artifact_bytes += len(data) - before

    def result(self, run_id: str, attempt: int, executor: str, body: ResultIn) -> None:
        """The attempt's outcome (the first one counts; a resent one is accepted and ignored)."""
        run = self._mine(run_id, attempt, executor)
        if run.outcome is not None:
            return
        kept = []
        for a in body.artifacts:
            f = run.artifacts_dir / a.path
            if a.artifact_withheld is None and not (
                f.is_file() and f.stat().st_size == a.size_bytes
            ):
                run.emit("warning", f"Artifact {a.path} did not arrive from the executor; left out")
                continue
            kept.append(a)
        run.outcome = Outcome(body.status, outputs=body.outputs, error=body.error,
                              error_code=body.error_code, exit_code=body.exit_code,
                              artifacts=kept, decision_required=body.decision_required)
        run.changed.set()

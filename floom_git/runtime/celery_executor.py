"""FLOOM_EXECUTOR=celery: the home node's executor that sends each run to Celery workers.

Per attempt it mints a run token, seals it with the secret values for the executor, publishes
`(workspace, run_id, worker_sha, inputs, secret names, sealed ticket)` and waits for the executor's
reports (runtime/remote_runs.py). Delivery is at least once; the claim makes the run happen
once. A claimed attempt that stops reporting for `executor_lost_seconds` ends as `failed` /
`executor_lost`, or is dispatched again when the worker declares `retry:`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

from floom_git.config import Settings
from floom_git.redaction import mask_url
from floom_git.runtime import remote_wire as wire
from floom_git.runtime.celery_app import make_app
from floom_git.runtime.executors import LogFn, RunOrder
from floom_git.runtime.remote_runs import RemoteRun, RemoteRuns
from floom_git.schemas.manifest import Manifest
from floom_git.services.identity.run_tokens import RunTokens
from floom_git.services.runs import Outcome
from floom_git.storage.run_log import ARTIFACTS

log = logging.getLogger("floom_git.runs")
TOKEN_MARGIN = 300.0  # a run token outlives the longest possible attempt by this much
DEFAULT_ATTEMPTS = 3
MAX_ATTEMPTS = 10


def retry_policy(manifest: Manifest) -> tuple[int, float]:
    """(attempts, delay seconds) for an executor loss: `retry:` in worker.yml (REFERENCE §1.7:
    max_attempts 1-10, default 3; delay_seconds; `on` "all" or a list holding executor_lost);
    (1, 0) when the worker declares none."""
    retry = manifest.retry
    if not isinstance(retry, dict):
        return 1, 0.0
    on = retry.get("on", ["all"])
    on = [on] if isinstance(on, str) else on
    if not isinstance(on, list) or not ({"all", "executor_lost"} & set(on)):
        return 1, 0.0
    attempts, delay = retry.get("max_attempts", DEFAULT_ATTEMPTS), retry.get("delay_seconds", 0)
    attempts = attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 3
    delay = delay if isinstance(delay, int | float) and not isinstance(delay, bool) else 0
    return max(1, min(attempts, MAX_ATTEMPTS)), float(min(max(delay, 0), 3600))


class CeleryExecutor:
    def __init__(self, settings: Settings, remote: RemoteRuns, tokens: RunTokens) -> None:
        self.settings = settings
        self.remote = remote
        self.tokens = tokens
        self.key = wire.parse_key(settings.executor_key)
        self.app = make_app(settings)
        # The producer is used from one thread only (kombu connections are not thread-safe).
        self._publisher = concurrent.futures.ThreadPoolExecutor(1, "floom-celery-publish")
        self.published: dict[str, dict[str, Any]] = {}  # run id -> its current task message

    async def start(self) -> None:
        log.info("runs execute on Celery workers (broker %s, queue %s); executors reach this "
                 "node at %s", mask_url(self.settings.celery_broker or ""),
                 self.settings.celery_queue, self.settings.executor_url)

    async def stop(self) -> None:
        self._publisher.shutdown(wait=False, cancel_futures=True)

    async def publish(self, run_id: str) -> None:
        """Put the current task message of `run_id` on the queue (again: the broker delivering
        it a second time looks exactly like this to the executors)."""
        message = self.published[run_id]
        await asyncio.get_running_loop().run_in_executor(self._publisher, self._send, message)

    def _send(self, message: dict[str, Any]) -> None:
        self.app.send_task(wire.TASK, kwargs={"message": message}, queue=self.settings.celery_queue,
                           task_id=f"{message['run_id']}.{message['attempt']}")

    async def execute(self, order: RunOrder, emit: LogFn, cancel: asyncio.Event) -> Outcome:
        attempts, delay = retry_policy(order.manifest)
        record = order.record
        try:
            for attempt in range(1, attempts + 1):
                outcome = await self._attempt(order, attempt, emit, cancel)
                if outcome.error_code != "executor_lost" or attempt == attempts:
                    return outcome
                emit("warning", f"{outcome.error}; the worker declares retry: dispatching it "
                                f"again (attempt {attempt + 1} of {attempts})")
                try:
                    await asyncio.wait_for(cancel.wait(), delay)
                    return Outcome("cancelled", error_code="user_cancel", error="Cancelled by user")
                except TimeoutError:
                    pass
            raise AssertionError("unreachable")
        finally:
            self.published.pop(record.id, None)
            self.tokens.revoke(record.id)

    async def _attempt(self, order: RunOrder, attempt: int, emit: LogFn,
                       cancel: asyncio.Event) -> Outcome:
        s, ws, record = self.settings, order.ws, order.record
        expires = time.time() + s.executor_claim_seconds + s.max_run_timeout_seconds + TOKEN_MARGIN
        token = self.tokens.mint(ws.uid, record.id, attempt, expires)
        self.published[record.id] = wire.encode_task(wire.task_message(self.key, wire.Ticket(
            home=s.executor_url, workspace=ws.id, workspace_uid=ws.uid, run_id=record.id,
            attempt=attempt, worker_id=record.worker_id, worker_sha=record.worker_sha,
            inputs=record.inputs, token=token, secrets=order.secrets,
            claim_by=time.time() + s.executor_claim_seconds)))
        run = self.remote.open(record.id, attempt, emit,
                               ws.runs.spool_dir(record.id) / ARTIFACTS)
        try:
            await self.publish(record.id)
            emit(
                "info", f"Queued for a Celery executor (queue {s.celery_queue}, attempt {attempt})"
            )
            return await self._watch(run, cancel)
        finally:
            self.remote.close(run)

    async def _watch(self, run: RemoteRun, cancel: asyncio.Event) -> Outcome:
        s = self.settings
        cancelled_at: float | None = None
        while True:
            if run.outcome is not None:
                return run.outcome
            now = run.clock()
            if cancel.is_set():
                if run.claimed_by is None:
                    run.cancel.set()  # a claim arriving now is refused
                    return Outcome("cancelled", error_code="user_cancel", error="Cancelled by user")
                run.cancel.set()  # the executor's heartbeat returns at once with it
                cancelled_at = cancelled_at or now
                if now - cancelled_at > s.executor_lost_seconds:
                    return Outcome("cancelled", error_code="user_cancel",
                                   error="Cancelled by user (the executor did not confirm)")
            if run.claimed_by is not None and now - run.last_seen > s.executor_lost_seconds:
                return Outcome("failed", error_code="executor_lost",
                               error=f"Executor {run.claimed_by} stopped reporting (no heartbeat "
                                     f"for {s.executor_lost_seconds:g}s)")
            if run.claimed_by is None and now - run.dispatched_at > s.executor_claim_seconds:
                run.cancel.set()
                return Outcome(
                    "failed",
                    error_code="executor_unavailable",
                    error=f"No executor took the run within {s.executor_claim_seconds:g}s "
                    f"(queue {s.celery_queue})",
                )
            run.changed.clear()
            # Every pass blocks on an event or the clock (a set `cancel` no longer wakes it).
            waits = {asyncio.ensure_future(run.changed.wait())}
            if not cancel.is_set():
                waits.add(asyncio.ensure_future(cancel.wait()))
            try:
                await asyncio.wait(waits, timeout=min(1.0, s.executor_heartbeat_seconds),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()

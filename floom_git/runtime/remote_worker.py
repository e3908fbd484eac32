"""An executor's side of one delivery of a `floom.run` task: unseal the ticket, claim the attempt
(a duplicate delivery stops here), fetch the worker's commit from the home node over git with the
run token, run it in the same sandbox as local runs (runtime/executor.py), and report to the home
node over HTTP: heartbeats (whose answer carries a cancel), log lines, artifacts, the result.
The executor never writes a run record; when the home node no longer knows the attempt (it gave
the run up, or restarted) the run is stopped and nothing more is reported."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from floom_git import paths
from floom_git.config import Settings
from floom_git.errors import FloomError
from floom_git.runtime import remote_wire as wire
from floom_git.runtime.executor import Executor, Job
from floom_git.runtime.jobs import build_job
from floom_git.schemas.manifest import parse_manifest
from floom_git.services.runs import Outcome, iso, now
from floom_git.storage import repo_info
from floom_git.storage.git_process import git_env
from floom_git.storage.repo import WorkspaceRepo

log = logging.getLogger("floom_git.executor")
ATTEMPT_HEADER = "x-floom-attempt"
LOG_BATCH = 500  # lines per POST
LOG_IDLE_SECONDS = 1.0  # the log sender's longest sleep (a line wakes it at once)
RETRY_SECONDS = 0.5
UNREACHABLE = "unreachable"  # the delivery could not claim: the task is delivered again later
_fetch_locks: dict[Path, threading.Lock] = {}
_fetch_locks_guard = threading.Lock()
_probe: dict[str, str | None] = {}
_probe_lock = threading.Lock()


class HomeGone(Exception):
    """The home node refused this delivery (duplicate, ended, or unknown): stop quietly."""


class HomeUnreachable(HomeGone):
    """The home node did not answer (network, 429, 5xx) for lost_seconds."""


def run_task(data: Any, settings: Settings, key: bytes) -> str:
    """The Celery task body (blocking): how the delivery ended, for the worker's own log only
    (no result backend keeps it); UNREACHABLE asks for the task to be delivered again."""
    try:
        message = wire.decode_task(data)
        ticket = wire.unseal(key, message)
    except (ValueError, msgspec.ValidationError) as exc:
        log.error("task refused: %s", exc)
        return "refused"
    return asyncio.run(Delivery(settings, ticket).main())


def sandbox_problem(executor: Executor) -> str | None:
    """Probe the sandbox once per process (every delivery makes its own Executor)."""
    if executor.sandbox is None:
        return None
    with _probe_lock:
        if "problem" not in _probe:
            _probe["problem"] = executor.sandbox.probe()
            if _probe["problem"]:
                log.error("runs will fail with sandbox_unavailable: %s", _probe["problem"])
        return _probe["problem"]


def fetch_commit(settings: Settings, ticket: wire.Ticket) -> WorkspaceRepo:
    """A local bare copy holding `ticket.worker_sha`, fetched (shallow) from the home node's git
    endpoint with the run token when not cached yet. The token goes to git in its environment,
    never on its command line."""
    name = hashlib.sha256(f"{ticket.home}\0{ticket.workspace_uid}".encode()).hexdigest()[:24]
    cache = settings.data_dir / "executor-cache" / f"{name}.git"
    with _fetch_locks_guard:
        lock = _fetch_locks.setdefault(cache, threading.Lock())
    with lock:
        if not (cache / "HEAD").exists():
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run([settings.git_binary, "init", "--quiet", "--bare", str(cache)],
                           check=True, capture_output=True, env=git_env(settings.git_binary))
        repo = WorkspaceRepo(cache)
        if repo_info.has_object(repo, ticket.worker_sha):
            return repo
        url = f"{ticket.home}/git/{urllib.parse.quote(ticket.workspace)}.git"
        basic = base64.b64encode(f"run:{ticket.token}".encode()).decode()
        env = git_env(settings.git_binary, GIT_CONFIG_COUNT="1",
                      GIT_CONFIG_KEY_0="http.extraHeader",
                      GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
        proc = subprocess.run(
            [settings.git_binary, "-C", str(cache), "fetch", "--quiet", "--no-tags", "--depth=1",
             url, ticket.worker_sha], capture_output=True, env=env, check=False,
            timeout=settings.git_timeout_seconds)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise FetchFailed(f"fetching {ticket.worker_sha[:12]} of workspace {ticket.workspace} "
                              f"from {ticket.home} failed: {err[-1] if err else proc.returncode}")
        return WorkspaceRepo(cache)


class FetchFailed(Exception):
    pass


class Delivery:
    def __init__(self, settings: Settings, ticket: wire.Ticket) -> None:
        self.settings = settings
        self.ticket = ticket
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.base = f"{ticket.home}/api/runs/{ticket.run_id}/executor"
        self.folder = (
            settings.spool_dir / f"{ticket.run_id}.{ticket.attempt}.{self.id.rsplit(':', 1)[1]}"
        )
        self.lost_seconds = settings.executor_lost_seconds
        self.pending: list[wire.LogLineIn] = []  # lines not sent yet
        self.sent = 0  # lines the home node has
        self.wake = asyncio.Event()
        self.finished = False
        self.gone = False  # the home node gave the attempt up
        self.reporting = False  # the result is being sent (the home node may close the attempt)

    # -- HTTP -----------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, *, body: bytes | None = None,
                    content_type: str = "application/json", timeout: float = 30.0) -> Any:
        """One report, retried on network errors, 429 and 5xx for up to lost_seconds; HomeGone
        when the home node refuses this delivery (any other 4xx)."""
        deadline = time.monotonic() + self.lost_seconds
        while True:
            try:
                async with self.http.request(
                        method, self.base + path, data=body, headers={"Content-Type": content_type},
                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    if resp.status < 300:
                        return await resp.json()
                    if resp.status != 429 and resp.status < 500:
                        raise HomeGone(f"{method} {path}: {resp.status} "
                                       f"{(await resp.text())[:300]}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise HomeUnreachable(f"the home node did not answer for "
                                          f"{self.lost_seconds:g}s: {exc}") from None
            if time.monotonic() > deadline:
                raise HomeUnreachable(f"the home node kept failing for {self.lost_seconds:g}s")
            await asyncio.sleep(RETRY_SECONDS)

    async def _post(self, path: str, payload: Any, timeout: float = 30.0) -> Any:
        return await self._call("POST", path, body=msgspec.json.encode(payload), timeout=timeout)

    # -- the delivery ---------------------------------------------------------------------------
    async def main(self) -> str:
        t = self.ticket
        headers = {"Authorization": f"Bearer {t.token}", wire.EXECUTOR_HEADER: self.id,
                   ATTEMPT_HEADER: str(t.attempt)}
        if time.time() > t.claim_by:
            log.info("run %s attempt %d: delivered after its claim window; dropped", t.run_id,
                     t.attempt)
            return "expired"
        async with aiohttp.ClientSession(headers=headers) as self.http:
            try:
                claimed = msgspec.convert(await self._post("/claim", {}), wire.Claimed)
            except HomeUnreachable as exc:
                log.warning("run %s attempt %d: the home node is unreachable (%s); the task "
                            "goes back to the queue", t.run_id, t.attempt, exc)
                return UNREACHABLE
            except HomeGone as exc:
                log.info("run %s attempt %d: delivery %s not run (%s)", t.run_id, t.attempt,
                         self.id, exc)
                return "ignored"
            self.lost_seconds = claimed.lost_seconds
            log.info("run %s attempt %d claimed by %s", t.run_id, t.attempt, self.id)
            cancel = asyncio.Event()
            beat = asyncio.create_task(self._heartbeats(claimed.heartbeat_seconds, cancel))
            sender = asyncio.create_task(self._send_logs())
            job: Job | None = None
            try:
                try:
                    job, outcome = await self._run(cancel)
                except Exception as exc:
                    log.exception("run %s failed inside the executor", t.run_id)
                    outcome = Outcome("failed", error_code="executor_error",
                                      error=f"The executor failed: {type(exc).__name__}: "
                                            f"{exc}"[:1000])
                self.finished = True
                self.wake.set()
                await sender  # every line is in before the result
                if self.gone:
                    return "abandoned"
                self.reporting = True  # heartbeats go on: uploads may take a while
                await self._report(job, outcome)
                return outcome.status
            except HomeGone as exc:
                log.warning("run %s: the result could not be reported: %s", t.run_id, exc)
                return "abandoned"
            finally:
                beat.cancel()
                sender.cancel()
                await asyncio.gather(beat, sender, return_exceptions=True)
                await asyncio.to_thread(shutil.rmtree, self.folder, True)

    def emit(self, level: str, message: str) -> None:
        self.pending.append(wire.LogLineIn(level=level, message=message, timestamp=iso(now())))  # type: ignore[arg-type]
        self.wake.set()

    async def _run(self, cancel: asyncio.Event) -> tuple[Job | None, Outcome]:
        t, s = self.ticket, self.settings
        self.emit("info", f"Fetching {t.worker_sha[:7]} from {t.home}")
        try:
            repo = await asyncio.to_thread(fetch_commit, s, t)
        except (FetchFailed, subprocess.SubprocessError) as exc:
            return None, Outcome("failed", error_code="fetch_failed", error=str(exc)[:1000])
        where = f"{paths.worker_dir(t.worker_id)}/{paths.MANIFEST}"
        blob = repo.read_blob(repo.resolve(t.worker_sha), where)
        if blob is None:
            return None, Outcome("failed", error_code="fetch_failed",
                                 error=f"{where} is missing at {t.worker_sha[:12]}")
        try:
            manifest = parse_manifest(blob, where=where, folder=t.worker_id)
        except FloomError as exc:
            return None, Outcome("failed", error_code="invalid_manifest", error=exc.message)
        job = await asyncio.to_thread(
            build_job, repo, run_id=t.run_id, worker_id=t.worker_id, worker_sha=t.worker_sha,
            inputs=t.inputs, manifest=manifest, secrets=t.secrets, settings=s, spool=self.folder,
            workspace_name=t.workspace)
        executor = Executor(s)
        executor.sandbox_problem = await asyncio.to_thread(sandbox_problem, executor)
        return job, await executor.run(job, self.emit, cancel)

    async def _heartbeats(self, every: float, cancel: asyncio.Event) -> None:
        """Report alive until the run ends; the home node holds each call up to `every` seconds
        and answers at once when the run is cancelled. Gone: stop the run."""
        while True:
            try:
                control = await self._post("/heartbeat", {}, timeout=every + 30)
            except HomeGone as exc:
                if self.reporting:
                    return  # the result arrived and the home node closed the attempt
                log.warning("run %s: stopping it, the home node gave it up (%s)",
                            self.ticket.run_id, exc)
                self.gone = True
                cancel.set()
                return
            if control.get("cancel"):
                cancel.set()
                await asyncio.sleep(every)  # keep reporting alive while the process stops

    async def _send_logs(self) -> None:
        """Send the run's lines in order as they come: a line goes out at once when the sender
        is idle; lines written while a POST is under way go together in the next one."""
        while not self.gone:
            try:
                await asyncio.wait_for(self.wake.wait(), LOG_IDLE_SECONDS)
            except TimeoutError:
                pass
            self.wake.clear()
            while self.pending and not self.gone:
                batch = self.pending[:LOG_BATCH]
                try:
                    await self._post("/logs", wire.LogBatch(first=self.sent, lines=batch))
                except HomeGone:
                    self.gone = True
                    return
                del self.pending[:len(batch)]
                self.sent += len(batch)
            if self.finished and not self.pending:
                return

    async def _report(self, job: Job | None, outcome: Outcome) -> None:
        for a in outcome.artifacts:
            if a.artifact_withheld is None and job is not None:
                data = await asyncio.to_thread((job.artifacts_dir / a.path).read_bytes)
                await self._call("PUT", "/artifacts/" + urllib.parse.quote(a.path), body=data,
                                 content_type="application/octet-stream", timeout=300)
        await self._post("/result", wire.ResultIn(
            status=outcome.status,  # type: ignore[arg-type]
            outputs=outcome.outputs, error=outcome.error, error_code=outcome.error_code,
            exit_code=outcome.exit_code, artifacts=outcome.artifacts,
            decision_required=outcome.decision_required))


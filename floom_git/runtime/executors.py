"""The executor interface: where the run engine hands a started run to be executed, and gets its
Outcome back. `LocalExecutor` runs it in this process (the default, no other services);
`runtime.celery_executor.CeleryExecutor` sends it to Celery workers (FLOOM_EXECUTOR=celery).
Either way only the engine (on the workspace's home node) writes the run record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from floom_git.config import Settings
from floom_git.runtime.executor import Executor
from floom_git.runtime.jobs import build_job
from floom_git.schemas.manifest import Manifest
from floom_git.schemas.run import RunRecord
from floom_git.services.runs import Outcome
from floom_git.services.workspaces import Workspace
from floom_git.storage.run_log import ARTIFACTS

LogFn = Callable[[str, str], None]  # (level, message): one line of the run's log


@dataclass(frozen=True)
class RunOrder:
    """A run the engine has started (status `running`): what to execute, with the values of
    the secrets its worker declares."""

    ws: Workspace
    record: RunRecord
    manifest: Manifest
    secrets: dict[str, str]


class RunExecutor(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def execute(self, order: RunOrder, log: LogFn, cancel: asyncio.Event) -> Outcome:
        """Run `order` to its end; worker faults come back as failed Outcomes. Setting `cancel`
        stops it (a `cancelled` Outcome); task cancellation (shutdown) propagates."""
        ...


class LocalExecutor:
    """Runs each run in this process's sandbox (runtime/executor.py)."""

    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor

    async def start(self) -> None:
        await self.executor.start()

    async def stop(self) -> None:
        return None

    async def execute(self, order: RunOrder, log: LogFn, cancel: asyncio.Event) -> Outcome:
        record, ws = order.record, order.ws
        spool = ws.runs.spool_dir(record.id)
        job = await asyncio.to_thread(
            build_job, ws.repo, run_id=record.id, worker_id=record.worker_id,
            worker_sha=record.worker_sha, inputs=record.inputs, manifest=order.manifest,
            secrets=order.secrets, settings=self.settings, spool=spool, workspace_name=ws.id,
            artifacts=ARTIFACTS)
        return await self.executor.run(job, log, cancel)

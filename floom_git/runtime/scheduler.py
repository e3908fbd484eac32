"""Cron triggers: each schedule trigger fires in its IANA timezone (croniter + zoneinfo).
Missed ticks collapse into one fire; a tick is skipped while the worker is paused, archived, in
error, already queued/running, or missing required inputs. State (next/last fire per trigger)
lives in system/schedules/<ws uid>.json (the workspace's internal id), outside git."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from floom_git.config import Settings
from floom_git.errors import FloomError, NotFound
from floom_git.runtime.queue import RunEngine
from floom_git.services import run_inputs, runs
from floom_git.services.cron import next_fire
from floom_git.services.workspaces import Workspace, WorkspaceManager
from floom_git.storage import private

log = logging.getLogger("floom_git.scheduler")
SCHEDULE_TYPES = ("schedule", "cron", "scheduled")
ACTIVE = ("queued", "running")
ACTIVE_SCAN = 50  # newest runs of a worker checked for one still active


class Scheduler:
    def __init__(self, settings: Settings, manager: WorkspaceManager, engine: RunEngine) -> None:
        self.settings = settings
        self.manager = manager
        self.engine = engine
        self._dir = settings.system_dir / "schedules"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(self.settings.scheduler_tick_seconds)

    def _path(self, uid: str) -> Path:
        return self._dir / f"{uid}.json"

    def state(self, uid: str) -> dict[str, dict[str, Any]]:
        """The planned and last fires of the workspace with internal id `uid`."""
        try:
            state: dict[str, dict[str, Any]] = json.loads(self._path(uid).read_text())
            return state
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self, uid: str, state: dict[str, dict[str, Any]]) -> None:
        if self.manager.by_uid(uid) is not None:  # never write for a deleted workspace
            private.write_json(self._path(uid), state)

    def drop(self, uid: str) -> None:
        """Forget the schedules of a deleted workspace (blocking)."""
        self._path(uid).unlink(missing_ok=True)

    async def tick(self, when: dt.datetime | None = None) -> list[tuple[str, str, str]]:
        """Evaluate every schedule trigger at `when` (default now). Returns (workspace, trigger
        key, action) for each trigger that was due: a run id, or `skipped: <reason>`."""
        when = when or runs.now()
        actions: list[tuple[str, str, str]] = []
        for ws in self.manager.all():
            try:
                await self.engine.attach(ws)
            except NotFound:
                continue  # deleted meanwhile
            state = self.state(ws.uid)
            fresh = self._tick_workspace(ws, state, when, actions)
            if fresh != state:
                await asyncio.to_thread(self._save, ws.uid, fresh)
        return actions

    def _tick_workspace(self, ws: Workspace, state: dict[str, dict[str, Any]], when: dt.datetime,
                        actions: list[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
        fresh: dict[str, dict[str, Any]] = {}
        for entry in ws.workers.all():
            if entry.manifest is None:
                continue
            for i, trig in enumerate(entry.manifest.all_triggers):
                if trig.type not in SCHEDULE_TYPES or not trig.cron:
                    continue
                key = f"{entry.id}#{i}"
                st = dict(state.get(key) or {})
                try:
                    if st.get("cron") != trig.cron or st.get("timezone") != trig.timezone:
                        # First sight (or the schedule changed): plan, don't fire.
                        st = {"cron": trig.cron, "timezone": trig.timezone,
                              "next_run_at": runs.iso(next_fire(trig.cron, trig.timezone, when))}
                    elif runs.parse_iso(st["next_run_at"], key) <= when:
                        st["next_run_at"] = runs.iso(next_fire(trig.cron, trig.timezone, when))
                        st["last_due_at"] = runs.iso(when)
                        action = self._fire(ws, entry.id, key)
                        st["last_result"] = action
                        if not action.startswith("skipped"):
                            st["last_fired_at"] = runs.iso(when)
                        actions.append((ws.id, key, action))
                except ValueError as exc:
                    st = {"cron": trig.cron, "timezone": trig.timezone, "error": str(exc)}
                fresh[key] = st
        return fresh

    def _fire(self, ws: Workspace, worker_id: str, key: str) -> str:
        entry = ws.workers.get(worker_id)
        if entry is None or entry.status != "ready":
            return f"skipped: worker is {entry.status if entry else 'gone'}"
        store = runs.store(ws)
        for i, e in enumerate(store.entries(worker_id)):
            if i >= ACTIVE_SCAN:
                break
            if e.status in ACTIVE:
                return f"skipped: run {e.id} is still {e.status}"
        try:
            manifest, _sha = run_inputs.committed_manifest(ws, worker_id)
            missing = run_inputs.missing_required(manifest, {})
            if missing:
                return "skipped: missing required inputs: " + ", ".join(missing)
            record = runs.create_run(ws, worker_id, {}, trigger_source="schedule", trigger_ref=key)
        except FloomError as exc:
            return f"skipped: {exc.message}"
        log.info("schedule %s started run %s", key, record.id)
        return record.id

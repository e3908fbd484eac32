"""Freezing a workspace for a move to another node: while frozen, every write to it is refused
with 503 and Retry-After; the state lives in the repository's .git/, so it survives a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from floom_git.errors import Unavailable
from floom_git.schemas.health import FreezeStatus
from floom_git.services.actor import SYSTEM
from floom_git.storage.atomic import atomic_write
from floom_git.storage.repo import MAIN, RUNS

# Why: a mirror catches up and the route switches without losing an acknowledged write. API
# writes, git push, new runs and on-disk edits are all refused; runs already running finish and
# their records are still committed. The state is never in a commit.

if TYPE_CHECKING:
    from floom_git.services.mirror import Mirror
    from floom_git.services.workspaces import Workspace

FROZEN_FILE = "floom-frozen"
RETRY_AFTER = 2  # seconds a refused writer is asked to wait
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Frozen:
    since: float
    reason: str


@dataclass
class FreezeCache:
    """A workspace's freeze as last read from its .git/ (`Workspace.frozen`): `read` is False
    until the first look, then `value` is the freeze or None."""

    read: bool = False
    value: Frozen | None = None


class WorkspaceFrozen(Unavailable):
    """A write to a frozen workspace (503 with Retry-After)."""

    def __init__(self, ws_id: str, state: Frozen) -> None:
        why = f": {state.reason}" if state.reason else ""
        super().__init__(f"Workspace {ws_id} is frozen for a move{why}; writes resume once it is "
                         "served again (retry after a moment)")
        self.retry_after = RETRY_AFTER


def _path(ws: Workspace) -> str:
    return str(ws.git_dir / FROZEN_FILE)


def state(ws: Workspace) -> Frozen | None:
    """The workspace's freeze, or None (read from .git/ once per open workspace)."""
    if ws.frozen.read:
        return ws.frozen.value
    try:
        with open(_path(ws)) as fh:
            data = json.load(fh)
        found: Frozen | None = Frozen(float(data["since"]), str(data.get("reason") or ""))
    except FileNotFoundError:
        found = None
    except (OSError, ValueError, KeyError, TypeError):
        found = Frozen(time.time(), "unreadable freeze file; unfreeze to clear it")  # fail closed
    ws.frozen = FreezeCache(True, found)
    return found


def check_writable(ws: Workspace) -> None:
    """Raise WorkspaceFrozen when `ws` is frozen."""
    found = state(ws)
    if found is not None:
        raise WorkspaceFrozen(ws.id, found)


def freeze(ws: Workspace, reason: str = "") -> Frozen:
    """Freeze `ws` (durably) and return the freeze; freezing again keeps the first one."""
    found = state(ws)
    if found is not None:
        return found
    found = Frozen(time.time(), reason.strip()[:200])
    data = json.dumps({"since": found.since, "reason": found.reason}).encode()
    atomic_write(Path(_path(ws)), data, mode=0o644, durable=True)
    ws.frozen = FreezeCache(True, found)
    return found


def unfreeze(ws: Workspace) -> None:
    try:
        os.unlink(_path(ws))
    except FileNotFoundError:
        pass
    ws.frozen = FreezeCache(True, None)


def tips(ws: Workspace) -> dict[str, str]:
    """The commits main and floom/runs point at: what a mirror must hold before a move."""
    refs = {}
    for ref in (MAIN, RUNS):
        tip = ws.repo.tip(ref)
        if tip is not None:
            refs[ref] = str(tip.id)
    return refs


async def drain(ws: Workspace) -> None:
    """Return once every write queued before the freeze has landed (or been refused): a no-op
    through the writer, in order, on floom/runs (which the freeze leaves open); nothing reaches
    main after it."""
    await ws.writer.write(lambda repo: None, SYSTEM.signature, ref=RUNS)


async def start(ws: Workspace, reason: str) -> None:
    """Freeze `ws` (the file is written off the event loop) and wait for the writes queued
    before it."""
    await asyncio.to_thread(freeze, ws, reason)
    await drain(ws)


async def thaw(ws: Workspace) -> None:
    await asyncio.to_thread(unfreeze, ws)


async def status(ws: Workspace, mirror: Mirror) -> FreezeStatus:
    """Whether `ws` is frozen and ready to move: no run active and the mirror holds every
    commit of main and floom/runs."""
    found = state(ws)
    store = ws.runs
    if found is not None:
        await store.flush()  # the records of runs that ended are committed (and so mirrored)
    active = sum(1 for r in list(store.live.values()) if r.status in ACTIVE)
    mirrored_state = mirror.states().get(ws.id)
    refs = tips(ws)
    mirrored = bool(mirrored_state is not None and mirrored_state.enabled
                    and not mirrored_state.pending and mirrored_state.pushed == refs)
    since = (dt.datetime.fromtimestamp(found.since, dt.UTC).isoformat(timespec="seconds")
             .replace("+00:00", "Z") if found else None)
    return FreezeStatus(workspace=ws.id, frozen=found is not None, since=since,
                        reason=found.reason if found else None, runs_active=active,
                        mirror=mirrored_state, mirrored=mirrored,
                        ready=found is not None and active == 0 and mirrored)

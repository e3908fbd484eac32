"""After a branch moved: the one pipeline that API commits, pushes and disk syncs all end in.
`main_moved` reloads the workers the move touched (off the event loop), emits the workspace
event (`commit`, `push` or `sync`, each with `source`), then tells the subscribers (metrics, the
mirror); moves of the server-owned branches only reach the subscribers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from floom_git.services import registry
from floom_git.services.events import EventBus
from floom_git.services.registry import WorkerRegistry
from floom_git.storage.repo import MAIN

log = logging.getLogger("floom_git.moves")

Source = Literal["api", "push", "sync"]
EVENT = {"api": "commit", "push": "push", "sync": "sync"}  # event type clients see, per source
EVENT_PATHS = 200  # a push event names at most this many paths


@dataclass(frozen=True)
class Moved:
    """How a branch moved (or, for a push or sync that changed nothing, that it did not): what
    every source returns and every subscriber is told. `actor` is the user id of a push and the
    commit author's email otherwise."""

    source: Source
    old: str | None = None
    new: str | None = None
    files: list[str] = field(default_factory=list)  # files the move changed
    actor: str = ""
    ref: str = MAIN
    paths: list[str] | None = None  # paths the event names, when not `files` (API changesets)
    workers: frozenset[str] = frozenset()  # workers the move touched (filled by the pipeline)
    refs: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # push: all refs
    invalid: dict[str, str] = field(default_factory=dict)  # sync: on-disk changes left, and why
    changed_again: list[str] = field(default_factory=list)  # sync: files to sync once more

    @property
    def moved(self) -> bool:
        return self.new != self.old or bool(self.refs)

    @property
    def sha(self) -> str | None:
        """The new tip when the branch moved, else None."""
        return self.new if self.new != self.old else None

    @property
    def short(self) -> str | None:
        return self.sha[:7] if self.sha else None

    @property
    def committed(self) -> list[str]:
        return self.files if self.sha else []


Subscriber = Callable[[Moved], None]


class Moves:
    """One workspace's pipeline: its worker registry, its event bus and who listens."""

    def __init__(self, workers: WorkerRegistry, events: EventBus) -> None:
        self.workers = workers
        self.events = events
        self.subscribers: list[Subscriber] = []

    async def main_moved(
        self,
        old: str | None,
        new: str | None,
        files: Iterable[str],
        actor: str,
        source: Source,
        *,
        refs: dict[str, tuple[str | None, str | None]] | None = None,
        invalid: dict[str, str] | None = None,
        changed_again: list[str] | None = None,
    ) -> Moved:
        """Announce that `main` went from `old` to `new` changing `files`; returns the move as
        published. A push also names every ref it moved (`refs`); a sync what it left on
        disk (`invalid`) and what changed again while it committed. A sync commits what the
        disk already holds, and the registry reads the disk: it was reloaded when the edit was
        seen, so it is not reloaded again."""
        move = Moved(source, old, new, list(files), actor, refs=refs or {},
                     invalid=invalid or {}, changed_again=changed_again or [])
        return (await self.landed([move]))[0]

    async def landed(self, moves: list[Moved]) -> list[Moved]:
        """Publish `moves` in order: one thread hop reloads the workers of all of them."""
        # Most writes touch no worker (contexts, issues, records): they skip the thread hop.
        reloads = [m for m in moves
                   if m.ref == MAIN and m.source != "sync" and registry.owners(m.files)]
        touched: dict[int, frozenset[str]] = {}
        if reloads:
            def reload() -> None:
                for m in reloads:
                    touched[id(m)] = frozenset(self.workers.reload_paths(m.files))

            try:
                await asyncio.to_thread(reload)
            except Exception:  # the move has landed: a reload failure must not undo it
                log.exception("workers could not be reloaded after main moved")
        out = []
        for m in moves:
            if m.ref == MAIN and m.source == "sync":
                m = replace(m, workers=_owners(m.committed))
            elif id(m) in touched:
                m = replace(m, workers=touched[id(m)])
            out.append(m)
            if m.ref == MAIN and (m.moved or m.invalid):
                self._emit(m)  # a sync that left invalid edits on disk says so, moved or not
            if not m.moved:
                continue
            for subscriber in list(self.subscribers):
                try:
                    subscriber(m)
                except Exception:  # a subscriber never turns a landed move into a failure
                    log.exception("a subscriber failed on a move of %s", m.ref)
        return out

    def _emit(self, m: Moved) -> None:
        event = EVENT[m.source]
        if m.source == "api":
            self.events.emit(event, sha=m.new, ref="main", paths=list(m.paths or m.files),
                             workers=sorted(m.workers), source=m.source)
        elif m.source == "push":
            self.events.emit(
                event,
                actor=m.actor,
                refs=[{"ref": r, "old": o, "new": n} for r, (o, n) in sorted(m.refs.items())],
                sha=m.new,
                before=m.old,
                paths=m.files[:EVENT_PATHS],
                paths_truncated=len(m.files) > EVENT_PATHS,
                workers=sorted(m.workers),
                source=m.source,
            )
        else:
            self.events.emit(event, sha=m.short, paths=m.committed, workers=sorted(m.workers),
                             invalid=dict(m.invalid), source=m.source)


def _owners(files: Iterable[str]) -> frozenset[str]:
    """Workers whose folder holds one of `files` (workers/<id>/<file>)."""
    return frozenset(p.split("/")[1] for p in files
                     if p.startswith("workers/") and p.count("/") >= 2 and p.split("/")[1])

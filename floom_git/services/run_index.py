"""The run index of one workspace: an entry per run (status, worker, times), ordered newest
first overall and per worker, built at start-up from floom/runs (storage/run_log.py).

Start-up reads the newest days' records from floom/runs (`load`), and the rest after
(`read_rest`, `add_rest`): from the index cache saved at the last shutdown, brought up to the
branch by a tree diff, or without one (a first start on a copied data directory, 100,000
records: seconds of reading) from floom/runs. The server answers meanwhile, and until the rest
is in, only the newest runs and the total count may be read (`covers`); everything else waits
for `ready()`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterator

from floom_git.errors import Unavailable
from floom_git.schemas.run import IndexEntry, RunRecord
from floom_git.storage.run_log import Day, RunLog

log = logging.getLogger("floom_git.runs")
HEAD_RUNS = 1_000  # records of the newest days read before start-up goes on (whole days)


def key(entry: IndexEntry | RunRecord) -> tuple[str, str]:
    return (entry.created_at, entry.id)


def entry_of(record: RunRecord) -> IndexEntry:
    """The index entry of `record`: the fields of the record the index keeps."""
    return IndexEntry(**{f: getattr(record, f) for f in IndexEntry.__struct_fields__})


class RunIndex:
    def __init__(self, runs: RunLog, what: str) -> None:
        self.runs = runs
        self.what = what  # "workspace <id>", for messages
        self.index: dict[str, IndexEntry] = {}
        self._keys: list[tuple[str, str]] = []
        self._by_worker: dict[str, list[tuple[str, str]]] = {}
        self.loaded = False  # the newest days at least (load ran)
        self.complete = False  # every record of floom/runs is in the index
        self.cold = False  # the rest was read from floom/runs: no index cache covered it
        self._complete = asyncio.Event()
        self._failed: BaseException | None = None
        self._rest_days: dict[str, Day] = {}  # day folders still to read, newest first
        self._rest_runs = 0  # the runs they hold
        self._rest_indexed = 0  # of those, the runs the index holds already (counted once)
        self._head_day = ""  # every record of this day and newer is in the index

    # -- start-up -----------------------------------------------------------------------------
    def load(self) -> None:
        """Build the index of the newest days from floom/runs (the rest: see read_rest).
        Blocking: once at start-up, in a thread."""
        entries, rest = self._branch_index()
        self._replace(entries)
        self._rest_days = {day.name: day for day in rest}
        self._rest_runs, self._rest_indexed = sum(day.runs for day in rest), 0
        if not rest:
            self._mark_complete()

    def _branch_index(self) -> tuple[list[IndexEntry], list[Day]]:
        """The newest days' records (whole days, HEAD_RUNS at least), read from floom/runs, and
        the other day folders, whose records read_rest reads after start-up. (Decoding a cache
        of 100,000 records and indexing them took longer than a start without one.)"""
        days = self.runs.days()
        head = runs = 0
        while head < len(days) and runs < HEAD_RUNS:
            runs += days[head].runs
            head += 1
        self._head_day = days[head - 1].name if head else ""
        return list(self.runs.read_entries(self.runs.folders(days[:head]))), days[head:]

    def read_rest(self) -> list[IndexEntry]:
        """The records load() left for later (blocking; in a thread): those of the index cache
        in the older days, the cache brought up to floom/runs by a tree diff, when it has as
        many as those days hold; else read from floom/runs (`cold`: the cache is saved once
        they are in)."""
        cache = self.runs.read_cache()
        entries = None if cache is None else self.runs.entries_since(cache.entries, cache.tip)
        if entries is not None:
            rest = [e for e in entries if e.created_at[:10] in self._rest_days]
            if len(rest) == self._rest_runs:
                return rest
            log.warning("%s: the run index cache does not match floom/runs; reading the "
                        "records instead", self.what)
        self.cold = True
        return list(self.runs.read_entries(self.runs.folders(list(self._rest_days.values()))))

    def add_rest(self, entries: list[IndexEntry]) -> list[IndexEntry]:
        """Put the records read by read_rest into the index (on the loop), where nothing newer
        of the same run is there already; returns those added."""
        added = [e for e in entries if e.id not in self.index]
        for entry in added:
            self.index[entry.id] = entry
        fresh = sorted(key(e) for e in added)
        self._keys = sorted(self._keys + fresh)  # two sorted runs: merged in linear time
        for k in fresh:
            self._by_worker.setdefault(self.index[k[1]].worker_id, []).append(k)
        for keys in self._by_worker.values():
            keys.sort()
        self._rest_days, self._rest_runs, self._rest_indexed = {}, 0, 0
        self._mark_complete()
        return added

    def fail_rest(self, exc: BaseException) -> None:
        """read_rest failed: whoever waits for the whole index gets `exc`."""
        self._failed = exc
        self._complete.set()

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def _mark_complete(self) -> None:
        self.complete = True
        self._head_day = ""
        self._complete.set()

    def covers(self, newest: int) -> bool:
        """The `newest` newest runs (and the total count) are final, though older records may
        still be being read."""
        if self.complete:
            return True
        final = len(self._keys) - bisect.bisect_left(self._keys, (self._head_day,))
        return final >= newest

    async def ready(self, newest: int | None = None) -> None:
        """Return once the index holds every record (or, with `newest`, once covers(newest)).
        Raises Unavailable when reading the records failed."""
        if newest is not None and self.covers(newest):
            return
        await self._complete.wait()
        if self._failed is not None:
            raise Unavailable(f"the run records of {self.what} could not be read "
                              f"({self._failed}); restart the server once it is repaired")

    def _replace(self, entries: list[IndexEntry]) -> None:
        self.index = {e.id: e for e in entries}
        self._keys = sorted(key(e) for e in entries)
        self._by_worker = {}
        for k in self._keys:
            self._by_worker.setdefault(self.index[k[1]].worker_id, []).append(k)
        self.loaded = True

    # -- changes and reads ----------------------------------------------------------------------
    def add(self, record: RunRecord) -> None:
        """Index the current state of `record`."""
        if record.id not in self.index:
            if self._rest_days and self._in_rest(record):
                self._rest_indexed += 1
            k = key(record)
            bisect.insort(self._keys, k)
            bisect.insort(self._by_worker.setdefault(record.worker_id, []), k)
        self.index[record.id] = entry_of(record)

    def _in_rest(self, record: RunRecord) -> bool:
        """Whether the day folders left to read hold `record`'s run (its folder's day is the day
        it was created: run_log.record_dir)."""
        day = self._rest_days.get(record.created_at[:10])
        return day is not None and self.runs.holds(day, record.id)

    def entries(self, worker_id: str | None = None) -> Iterator[IndexEntry]:
        """Index entries newest first (by created_at, then id)."""
        keys = self._keys if worker_id is None else self._by_worker.get(worker_id, [])
        for k in reversed(keys):
            yield self.index[k[1]]

    def entries_before(self, cursor: tuple[str, str],
                       worker_id: str | None = None) -> Iterator[IndexEntry]:
        keys = self._keys if worker_id is None else self._by_worker.get(worker_id, [])
        pos = bisect.bisect_left(keys, cursor)
        for k in reversed(keys[:pos]):
            yield self.index[k[1]]

    def count(self, worker_id: str | None = None) -> int:
        if worker_id is None:  # before the rest is read, its runs count (once each)
            return len(self._keys) + self._rest_runs - self._rest_indexed
        return len(self._by_worker.get(worker_id, []))

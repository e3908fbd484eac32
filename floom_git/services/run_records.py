"""Run records of one workspace: the durable spool, the in-memory index, and grouped commits of
records onto the server-owned branch refs/heads/floom/runs.

Durability: a record change is first written to `<spool>/<ws uid>/<run_id>/record.json` (fsync'ed)
and only then acknowledged; a records writer commits every changed record after a short delay
(`run_commit_delay`), many runs in one commit, then drops the spool copy. At start-up the index
is rebuilt from the branch and the spool is laid over it, so a crash loses nothing acknowledged.
Logs of a run live in the spool (`logs.ndjson`) until its process ends; then they, the artifacts
and the final record are committed together. Everything here runs on the event loop except the
git reads and commits, which go through threads and the workspace writer.

Without an index cache (a first start on a copied data directory, 100,000 records: seconds of
reading), start-up reads the newest days only (`load`), and the rest after (`read_rest`,
`add_rest`): the server answers meanwhile, and until the rest is in, only the newest runs and
the total count may be read (`covers`); everything else waits for `ready()`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import msgspec
from pygit2.enums import DeltaStatus, ObjectType

from floom_git.errors import NotFound, Unavailable
from floom_git.schemas.run import IndexEntry, LogLine, RunRecord
from floom_git.services.actor import SYSTEM
from floom_git.services.spool_commits import (
    CommitTimer,
    drop_prefix,
    files_under,
    fsync_append,
    fsync_write,
    unapplied,
)
from floom_git.storage import blobs
from floom_git.storage.repo import RUNS, Change, Changeset, WorkspaceRepo

if TYPE_CHECKING:
    from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.runs")
RUNS_DIR = "runs"
RECORD = "run.json"
LOGS = "logs.ndjson"
ARTIFACTS = "artifacts"
SPOOL_RECORD = "record.json"
HEAD_RUNS = 1_000  # records of the newest days read before start-up goes on (whole days)
APPEND_DIR = "append"  # spool/<run>/append/<name>: lines to append to runs/.../<name>
INDEX_CACHE = "index.cache"  # spool/<ws>/index.cache: the index as of a floom/runs commit
_decode_entry = msgspec.json.Decoder(IndexEntry)
_decode_record = msgspec.json.Decoder(RunRecord)
_decode_line = msgspec.json.Decoder(LogLine)


class _Folder(NamedTuple):
    """A run folder on floom/runs: runs/<day>/<run>, and its tree."""

    day: str
    run: str
    tree: str


class _IndexCache(msgspec.Struct):
    tip: str
    entries: list[IndexEntry]


_decode_cache = msgspec.msgpack.Decoder(_IndexCache)


class Hooks(Protocol):
    """What the run engine (runtime/queue.py) offers the services: dispatch and cancellation."""

    def submit(self, ws_id: str, run_id: str) -> None: ...

    def cancel(self, ws_id: str, run_id: str) -> bool: ...

    def queue_position(self, run_id: str) -> int | None: ...

    def finished(self, ws_id: str, record: RunRecord) -> None: ...


def encode_record(record: RunRecord) -> bytes:
    return msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n"


def record_dir(record: RunRecord | IndexEntry) -> str:
    return f"{RUNS_DIR}/{record.created_at[:10]}/{record.id}"


def _key(entry: IndexEntry | RunRecord) -> tuple[str, str]:
    return (entry.created_at, entry.id)


@dataclass
class _Snapshot:
    version: int
    record: RunRecord
    data: bytes


class RunStore:
    """The run records of one workspace (index, live records, spool, commits)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.settings = ws.settings
        self.spool = ws.settings.spool_dir / ws.uid  # the internal id: never reused
        self.index: dict[str, IndexEntry] = {}
        self._keys: list[tuple[str, str]] = []
        self._by_worker: dict[str, list[tuple[str, str]]] = {}
        self.live: dict[str, RunRecord] = {}
        self._logs: dict[str, list[LogLine]] = {}
        self._passing: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # see append_passing
        self._log_files: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._waiters: dict[str, asyncio.Event] = {}
        self._flush_lock = asyncio.Lock()
        self.commits = CommitTimer(ws.settings.run_commit_delay, self.flush, lambda: bool(self._dirty),
                                   f"run records of workspace {ws.id}")
        self.hooks: Hooks | None = None
        self.loaded = False  # the newest days at least (load ran)
        self.complete = False  # every record of floom/runs is in the index
        self.cold = False  # load read records from floom/runs: no index cache covered them
        self._complete = asyncio.Event()
        self._failed: BaseException | None = None
        self._rest: list[_Folder] = []  # run folders still to read, newest day first
        self._rest_ids: set[str] = set()
        self._head_day = ""  # every record of this day and newer is in the index
        self._cache_lock = threading.Lock()

    @classmethod
    def of(cls, ws: Workspace) -> RunStore:
        """The store of `ws`, created on first use. It rides on the Workspace object so that
        `services.runs.get_run(ws, run_id)` needs nothing but the workspace."""
        store = vars(ws).get("_run_store")
        if store is None:
            store = cls(ws)
            vars(ws)["_run_store"] = store
        return store

    # -- start-up -----------------------------------------------------------------------------
    def load(self) -> list[RunRecord]:
        """Build the index from floom/runs (without a cache: its newest days; see read_rest)
        and lay the spool over it (blocking; call once at start-up, in a thread). Returns the
        spool records, which the caller re-registers."""
        entries, self._rest = self._branch_index()
        self._rest_ids = {f.run for f in self._rest}
        spooled: list[RunRecord] = []
        if self.spool.is_dir():
            for child in sorted(self.spool.iterdir()):
                rec_path = child / SPOOL_RECORD
                if not child.name.startswith("run_"):
                    continue
                if rec_path.is_file():
                    try:
                        record = _decode_record.decode(rec_path.read_bytes())
                    except msgspec.DecodeError:
                        log.error("unreadable spool record %s; left in place", rec_path)
                        continue
                    record.seq = max(record.seq, self._last_log_seq(child / LOGS))
                    spooled.append(record)
                elif not (child / LOGS).exists() and not (child / APPEND_DIR).exists():
                    shutil.rmtree(child, ignore_errors=True)  # committed; cleanup was cut short
        self._replace_index(entries)
        if not self._rest:
            self._mark_complete()
        return spooled

    def _branch_index(self) -> tuple[list[IndexEntry], list[_Folder]]:
        """Index entries of the records on floom/runs: from the cache written at the last
        shutdown plus the records changed since (a tree diff), else by reading the newest days'
        records; the other run folders are returned to read later."""
        repo = self.ws.repo
        tip = repo.tip(RUNS)
        if tip is None:
            return [], []
        cache = self._read_cache()
        if cache is not None and cache.tip == str(tip.id):
            return cache.entries, []
        if cache is not None:
            try:
                old = repo.resolve(cache.tip)
                if repo.is_ancestor(old, RUNS):
                    return self._apply_diff(cache.entries, old, tip), []
            except NotFound:
                pass
        self.cold = True
        folders = self._run_folders(repo, tip)
        head = 0
        while head < len(folders) and (head < HEAD_RUNS
                                       or folders[head].day == folders[head - 1].day):
            head += 1
        self._head_day = folders[head - 1].day if head else ""
        return list(self._read_records(folders[:head])), folders[head:]

    def read_rest(self) -> list[IndexEntry]:
        """The records load() left for later (blocking; in a thread)."""
        return list(self._read_records(self._rest))

    def add_rest(self, entries: list[IndexEntry]) -> list[IndexEntry]:
        """Put the records read by read_rest into the index (on the loop), where nothing newer
        of the same run is there already; returns those added."""
        added = [e for e in entries if e.id not in self.index]
        for entry in added:
            self.index[entry.id] = entry
        fresh = sorted(_key(e) for e in added)
        self._keys = sorted(self._keys + fresh)  # two sorted runs: merged in linear time
        for key in fresh:
            self._by_worker.setdefault(self.index[key[1]].worker_id, []).append(key)
        for keys in self._by_worker.values():
            keys.sort()
        self._rest, self._rest_ids = [], set()
        self._mark_complete()
        return added

    def fail_rest(self, exc: BaseException) -> None:
        """read_rest failed: whoever waits for the whole index gets `exc`."""
        self._failed = exc
        self._complete.set()

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
            raise Unavailable(f"the run records of workspace {self.ws.id} could not be read "
                              f"({self._failed}); restart the server once it is repaired")

    @staticmethod
    def _run_folders(repo: WorkspaceRepo, tip: Any) -> list[_Folder]:
        """Every run folder of floom/runs, newest day first."""
        root = repo.entry(tip, RUNS_DIR)
        if root is None or root.type != ObjectType.TREE:
            return []
        odb = repo.repo
        days = sorted((d for d in odb[root.id] if d.type == ObjectType.TREE),
                      key=lambda d: d.name, reverse=True)
        return [_Folder(day.name, run.name, str(run.id))
                for day in days for run in odb[day.id] if run.type == ObjectType.TREE]

    def _read_records(self, folders: list[_Folder]) -> Iterator[IndexEntry]:
        """The records of `folders`, read by `git cat-file` in its own process meanwhile
        (storage/blobs.py): with 100,000 records that is most of a cold start."""
        if not folders:
            return
        names = (f"{f.tree}:{RECORD}" for f in folders)
        read = blobs.read_many(self.ws.repo.path, names, self.settings.git_binary)
        for folder, data in zip(folders, read, strict=True):
            if data is None:
                continue  # a run folder without its record
            try:
                yield _decode_entry.decode(data)
            except msgspec.DecodeError:
                log.error("unreadable run record %s/%s/%s", RUNS_DIR, folder.day, folder.run)

    def _read_cache(self) -> _IndexCache | None:
        try:
            return _decode_cache.decode((self.spool / INDEX_CACHE).read_bytes())
        except (FileNotFoundError, msgspec.DecodeError):
            return None

    def write_cache(self, tip: str | None = None, entries: list[IndexEntry] | None = None) -> None:
        """Save the index as of floom/runs' tip, so the next start-up reads one file."""
        if tip is None:
            commit = self.ws.repo.tip(RUNS)
            if commit is None:
                return
            tip = str(commit.id)
            entries = list(self.index.values())  # uncommitted states are in the spool too
        data = msgspec.msgpack.encode(_IndexCache(tip=tip, entries=entries or []))
        path = self.spool / INDEX_CACHE
        with self._cache_lock:  # at shutdown and once a cold start has read everything
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{INDEX_CACHE}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def cache_snapshot(self) -> tuple[str, list[IndexEntry]] | None:
        """What write_cache would save now, taken on the loop (the index changes there)."""
        tip = self.ws.repo.tip(RUNS)
        return None if tip is None else (str(tip.id), list(self.index.values()))

    def _apply_diff(self, entries: list[IndexEntry], old: Any, new: Any) -> list[IndexEntry]:
        by_id = {e.id: e for e in entries}
        diff = self.ws.repo.repo.diff(old.tree, new.tree)
        for delta in diff.deltas:
            path = delta.new_file.path
            if not path.endswith("/" + RECORD):
                continue
            rid = path.split("/")[-2]
            if delta.status == DeltaStatus.DELETED:
                by_id.pop(rid, None)
                continue
            try:
                by_id[rid] = _decode_entry.decode(self.ws.repo.repo[delta.new_file.id].data)
            except msgspec.DecodeError:
                log.error("unreadable run record %s", path)
        return list(by_id.values())

    def _replace_index(self, entries: list[IndexEntry]) -> None:
        self.index = {e.id: e for e in entries}
        self._keys = sorted(_key(e) for e in entries)
        self._by_worker = {}
        for key in self._keys:
            self._by_worker.setdefault(self.index[key[1]].worker_id, []).append(key)
        self.loaded = True

    def _last_log_seq(self, path: Path) -> int:
        last = 0
        try:
            with open(path, "rb") as fh:
                for line in fh:
                    try:
                        last = max(last, _decode_line.decode(line).seq)
                    except msgspec.DecodeError:
                        continue
        except FileNotFoundError:
            pass
        return last

    # -- reads ----------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        """The current record; NotFound when there is no such run."""
        record = self.live.get(run_id)
        if record is not None:
            return record
        entry = self.index.get(run_id)
        if entry is None:
            raise NotFound("Run not found")
        data = self.ws.repo.read_blob(self.ws.repo.tip(RUNS), f"{record_dir(entry)}/{RECORD}")
        if data is None:
            raise NotFound("Run not found")
        return _decode_record.decode(data)

    def exists(self, run_id: str) -> bool:
        return run_id in self.index

    def logs(self, run_id: str) -> list[LogLine]:
        record = self.get(run_id)
        if run_id in self._logs:
            return list(self._logs[run_id])
        spooled = self.spool / run_id / LOGS
        if spooled.is_file():
            return list(_read_lines(spooled.read_bytes()))
        data = self.ws.repo.read_blob(self.ws.repo.tip(RUNS), f"{record_dir(record)}/{LOGS}")
        return list(_read_lines(data or b""))

    def read_file(self, run_id: str, rel: str) -> bytes | None:
        """A file of the run's folder (e.g. artifacts/x.md), from the spool if still there."""
        record = self.get(run_id)
        spooled = self.spool / run_id / rel
        if spooled.is_file():
            return spooled.read_bytes()
        data = self.ws.repo.read_blob(self.ws.repo.tip(RUNS), f"{record_dir(record)}/{rel}")
        pending = self.spool / run_id / APPEND_DIR / rel
        if pending.is_file():
            data = (data or b"") + pending.read_bytes()
        return data

    def entries(self, worker_id: str | None = None) -> Iterator[IndexEntry]:
        """Index entries newest first (by created_at, then id)."""
        keys = self._keys if worker_id is None else self._by_worker.get(worker_id, [])
        for key in reversed(keys):
            yield self.index[key[1]]

    def entries_before(self, cursor: tuple[str, str], worker_id: str | None = None) -> Iterator[IndexEntry]:
        keys = self._keys if worker_id is None else self._by_worker.get(worker_id, [])
        pos = bisect.bisect_left(keys, cursor)
        for key in reversed(keys[:pos]):
            yield self.index[key[1]]

    def count(self, worker_id: str | None = None) -> int:
        if worker_id is None:  # before the rest is read, its folders count (every one is a run)
            return len(self._keys) + sum(1 for r in self._rest_ids if r not in self.index)
        return len(self._by_worker.get(worker_id, []))

    # -- writes -----------------------------------------------------------------------------------
    def put(self, record: RunRecord, *, durable: bool = True) -> None:
        """Make `record` the current state: spool it (fsync'ed when `durable`), index it, and
        schedule its commit. Returns once the state survives a crash."""
        data = encode_record(record)
        path = self.spool / record.id / SPOOL_RECORD
        if durable:
            fsync_write(path, data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.live[record.id] = record
        self._index(record)
        self._versions[record.id] = self._versions.get(record.id, 0) + 1
        self._dirty.add(record.id)
        self._schedule()
        self.notify(record.id)

    def _index(self, record: RunRecord) -> None:
        entry = IndexEntry(**{f: getattr(record, f) for f in IndexEntry.__struct_fields__})
        if record.id not in self.index:
            key = _key(record)
            bisect.insort(self._keys, key)
            bisect.insort(self._by_worker.setdefault(record.worker_id, []), key)
        self.index[record.id] = entry

    def append_log(self, record: RunRecord, level: str, message: str, timestamp: str,
                   event: dict[str, Any] | None = None) -> LogLine | None:
        """Add a log line to a live run (spool file + memory); None once the cap is reached.
        `event` is the step an agent run's line reports (see LogLine)."""
        if record.id not in self._logs:
            self._resume_logs(record)
        lines = self._logs[record.id]
        cap = self.settings.run_max_log_lines
        if len(lines) > cap:
            return None
        if len(lines) == cap:
            level, message = "warning", f"log truncated: more than {cap} lines"
        record.seq += 1
        line = LogLine(seq=record.seq, level=level, message=message, timestamp=timestamp,
                       event=event if len(lines) < cap else None)
        lines.append(line)
        fh = self._log_files.get(record.id)
        if fh is None:
            (self.spool / record.id).mkdir(parents=True, exist_ok=True)
            fh = self._log_files[record.id] = open(self.spool / record.id / LOGS, "ab")  # noqa: SIM115
        fh.write(msgspec.json.encode(line) + b"\n")
        fh.flush()
        self.notify(record.id)
        return line

    def _resume_logs(self, record: RunRecord) -> None:
        """The lines a run logged so far, before it logs again: none for a new run; for one that
        ended its process part and goes on (an agent resumed after its approval) those in the
        spool or on floom/runs, so the next commit keeps them all."""
        spooled = self.spool / record.id / LOGS
        if spooled.is_file():
            data = spooled.read_bytes()
        else:
            data = self.ws.repo.read_blob(self.ws.repo.tip(RUNS), f"{record_dir(record)}/{LOGS}") or b""
            if data:
                fsync_write(spooled, data)
        self._logs[record.id] = list(_read_lines(data))

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
        fh = self._log_files.pop(run_id, None)
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()

    def spool_dir(self, run_id: str) -> Path:
        return self.spool / run_id

    def append_line(self, run_id: str, name: str, line: bytes) -> None:
        """Append one line to runs/<date>/<run_id>/<name> (durable now, committed soon)."""
        record = self.get(run_id)
        fsync_append(self.spool / run_id / APPEND_DIR / name, line)
        self.live.setdefault(run_id, record)
        self._versions[run_id] = self._versions.get(run_id, 0) + 1
        self._dirty.add(run_id)
        self._schedule()

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
    def _schedule(self) -> None:
        self.commits.schedule()

    async def flush(self) -> None:
        """Commit every changed record now (one commit); then drop what the spool no longer needs."""
        async with self._flush_lock:
            if not self._dirty:
                return
            snaps = {rid: _Snapshot(self._versions[rid], self.live[rid], encode_record(self.live[rid]))
                     for rid in sorted(self._dirty) if rid in self.live}
            ended = {rid for rid, s in snaps.items() if s.record.ended}
            spool = self.spool
            consumed: dict[tuple[str, str], int] = {}  # appended bytes this commit carries

            def build(repo: WorkspaceRepo) -> Changeset:
                changes: dict[str, Change] = {}
                tip = repo.tip(RUNS)
                for rid, snap in snaps.items():
                    base = record_dir(snap.record)
                    changes[f"{base}/{RECORD}"] = snap.data
                    run_spool = spool / rid
                    if rid in ended:
                        logs = run_spool / LOGS
                        if logs.is_file():
                            changes[f"{base}/{LOGS}"] = logs.read_bytes()
                        for rel, data in files_under(run_spool / ARTIFACTS):
                            changes[f"{base}/{ARTIFACTS}/{rel}"] = data
                    for rel, data in files_under(run_spool / APPEND_DIR):
                        consumed[(rid, rel)] = len(data)
                        have = repo.read_blob(tip, f"{base}/{rel}") or b""
                        fresh = unapplied(have, data)
                        if fresh:
                            changes[f"{base}/{rel}"] = have + fresh
                return Changeset(changes, _message(snaps))

            await self.ws.writer.write(build, SYSTEM.signature, ref=RUNS, check_worktree=False)
            for (rid, rel), size in consumed.items():
                drop_prefix(self.spool / rid / APPEND_DIR / rel, size)  # keep lines added since
            for rid, snap in snaps.items():
                if self._versions.get(rid) != snap.version:
                    continue
                self._dirty.discard(rid)
                run_spool = self.spool / rid
                if rid in ended and rid not in self._log_files:
                    shutil.rmtree(run_spool, ignore_errors=True)
                    self.live.pop(rid, None)
                    self._logs.pop(rid, None)
                    self._versions.pop(rid, None)
                else:
                    try:
                        (run_spool / SPOOL_RECORD).unlink()
                    except FileNotFoundError:
                        pass

    async def close(self) -> None:
        await self.commits.close()
        for rid in list(self._log_files):
            self.close_logs(rid)
        try:
            await self.flush()
        except Exception:
            log.exception("final commit of run records of %s failed; the spool keeps them", self.ws.id)
        if self.complete and self._failed is None:
            await asyncio.to_thread(self.write_cache)


def _message(snaps: dict[str, _Snapshot]) -> str:
    if len(snaps) == 1:
        rid, snap = next(iter(snaps.items()))
        return f"runs: {rid} {snap.record.status} ({snap.record.worker_id})"
    counts: dict[str, int] = {}
    for snap in snaps.values():
        counts[snap.record.status] = counts.get(snap.record.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"runs: record {len(snaps)} runs ({detail})"


def _read_lines(data: bytes) -> Iterator[LogLine]:
    for raw in data.splitlines():
        if raw.strip():
            try:
                yield _decode_line.decode(raw)
            except msgspec.DecodeError:
                continue

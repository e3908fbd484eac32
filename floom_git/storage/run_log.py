"""The run log of one workspace on disk: its spool (`<spool>/<ws uid>/<run_id>/`: the fsync'd
record, `logs.ndjson`, artifacts, lines to append), the committer that moves spooled runs onto
the server-owned branch floom/runs (many runs per commit), and the reads of that branch.

Durability: a record change is first written to `<run_id>/record.json` (fsync'ed) and only then
acknowledged; the committer commits every changed record after a short delay, then drops the
spool copy. Logs of a run live in the spool until its process ends; then they, the artifacts
and the final record are committed together. Runs on the event loop except the git reads and
commits, which go through threads and the workspace writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import msgspec
import pygit2
from pygit2.enums import DeltaStatus, ObjectType

from floom_git.errors import NotFound
from floom_git.schemas.run import IndexEntry, LogLine, RunRecord
from floom_git.storage import blobs
from floom_git.storage.atomic import atomic_write
from floom_git.storage.repo import RUNS, Change, Changeset, WorkspaceRepo, signature
from floom_git.storage.spool import (
    CommitTimer,
    appended_sizes,
    committed_and_spooled,
    drop_prefix,
    files_under,
    fsync_append,
    fsync_write,
    read_if_there,
    read_prefix,
    unapplied,
)
from floom_git.storage.writer import Writer

log = logging.getLogger("floom_git.runs")
RUNS_DIR = "runs"
RECORD = "run.json"
LOGS = "logs.ndjson"
ARTIFACTS = "artifacts"
SPOOL_RECORD = "record.json"
APPEND_DIR = "append"  # spool/<run>/append/<name>: lines to append to runs/.../<name>
INDEX_CACHE = "index.cache"  # spool/<ws>/index.cache: the index as of a floom/runs commit
SERVER = signature("floom", "floom@floom.local")  # the author of floom/runs commits
_decode_entry = msgspec.json.Decoder(IndexEntry)
_decode_record = msgspec.json.Decoder(RunRecord)
_decode_line = msgspec.json.Decoder(LogLine)


class Day(NamedTuple):
    """A day folder on floom/runs: runs/<day>, its tree, and how many runs it holds."""

    name: str
    tree: str
    runs: int


class Folder(NamedTuple):
    """A run folder on floom/runs: runs/<day>/<run>, and its tree."""

    day: str
    run: str
    tree: str


class IndexCache(msgspec.Struct):
    tip: str
    entries: list[IndexEntry]


class _RawCache(msgspec.Struct):
    tip: str
    entries: list[msgspec.Raw]


_decode_raw_cache = msgspec.msgpack.Decoder(_RawCache)
_decode_index_entry = msgspec.msgpack.Decoder(IndexEntry)


def encode_record(record: RunRecord) -> bytes:
    return msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n"


def record_dir(record: RunRecord | IndexEntry) -> str:
    return f"{RUNS_DIR}/{record.created_at[:10]}/{record.id}"


@dataclass
class _Snapshot:
    version: int
    record: RunRecord
    data: bytes


class RunLog:
    """The spool and the floom/runs branch of one workspace, and the live records in between:
    every record changed since its last commit, with the log lines of the runs that log."""

    def __init__(self, repo: WorkspaceRepo, writer: Writer, spool: Path, *, git_binary: str,
                 max_log_lines: int, commit_delay: float, what: str) -> None:
        self.repo = repo
        self.writer = writer
        self.spool = spool
        self.git_binary = git_binary
        self.max_log_lines = max_log_lines
        self.live: dict[str, RunRecord] = {}
        self._logs: dict[str, list[LogLine]] = {}
        self._log_files: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._cache_lock = threading.Lock()
        self.commits = CommitTimer(commit_delay, self.flush, lambda: bool(self._dirty), what)

    # -- the spool at start-up --------------------------------------------------------------
    def spooled(self) -> list[RunRecord]:
        """The records the spool holds (not committed yet), with their last log line's number;
        removes run folders whose commit was made but whose cleanup was cut short (blocking)."""
        out: list[RunRecord] = []
        if not self.spool.is_dir():
            return out
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
                record.seq = max(record.seq, _last_log_seq(child / LOGS))
                out.append(record)
            elif not (child / LOGS).exists() and not (child / APPEND_DIR).exists():
                shutil.rmtree(child, ignore_errors=True)  # committed; cleanup was cut short
        return out

    # -- floom/runs ---------------------------------------------------------------------------
    def tip(self) -> str | None:
        commit = self.repo.tip(RUNS)
        return None if commit is None else str(commit.id)

    def days(self) -> list[Day]:
        """Every day folder of floom/runs, newest first, with how many runs it holds: its
        entries, read without listing them (each is a run folder: the branch is the server's
        own, push.SERVER_OWNED)."""
        repo = self.repo
        tip = repo.tip(RUNS)
        root = repo.entry(tip, RUNS_DIR) if tip is not None else None
        if root is None or root.type != ObjectType.TREE:
            return []
        odb = repo.repo
        days = sorted((d for d in cast(pygit2.Tree, odb[root.id]) if d.type == ObjectType.TREE),
                      key=lambda d: d.name or "", reverse=True)
        return [Day(day.name or "", str(day.id), len(cast(pygit2.Tree, odb[day.id])))
                for day in days]

    def folders(self, days: list[Day]) -> list[Folder]:
        """The run folders of `days`, in their order."""
        odb = self.repo.repo
        return [Folder(day.name, run.name or "", str(run.id))
                for day in days for run in cast(pygit2.Tree, odb[day.tree])
                if run.type == ObjectType.TREE]

    def holds(self, day: Day, run_id: str) -> bool:
        """Whether `day` (as listed by days()) has a folder for run `run_id`."""
        return run_id in cast(pygit2.Tree, self.repo.repo[day.tree])

    def read_entries(self, folders: list[Folder]) -> Iterator[IndexEntry]:
        """The records of `folders`, read by `git cat-file` in its own process meanwhile
        (storage/blobs.py): with 100,000 records that is most of a cold start."""
        if not folders:
            return
        names = (f"{f.tree}:{RECORD}" for f in folders)
        read = blobs.read_many(self.repo.path, names, self.git_binary)
        for folder, data in zip(folders, read, strict=True):
            if data is None:
                continue  # a run folder without its record
            try:
                yield _decode_entry.decode(data)
            except msgspec.DecodeError:
                log.error("unreadable run record %s/%s/%s", RUNS_DIR, folder.day, folder.run)

    def entries_since(self, entries: list[IndexEntry], old_tip: str) -> list[IndexEntry] | None:
        """`entries` (the records as of commit `old_tip` of floom/runs) brought up to its tip by
        a tree diff; None when `old_tip` is not in the branch's history any more."""
        repo = self.repo
        try:
            old = repo.resolve(old_tip)
        except NotFound:
            return None
        new = repo.tip(RUNS)
        if new is None or not repo.is_ancestor(old, RUNS):
            return None
        if new.tree_id == old.tree_id:  # libgit2 diffs even equal trees entry by entry: 0.2 s
            return entries
        by_id = {e.id: e for e in entries}
        for delta in old.tree.diff_to_tree(new.tree).deltas:
            path = delta.new_file.path
            if not path.endswith("/" + RECORD):
                continue
            rid = path.split("/")[-2]
            if delta.status == DeltaStatus.DELETED:
                by_id.pop(rid, None)
                continue
            try:
                blob = cast(pygit2.Blob, repo.repo[delta.new_file.id])
                by_id[rid] = _decode_entry.decode(blob.data)
            except msgspec.DecodeError:
                log.error("unreadable run record %s", path)
        return list(by_id.values())

    def read_cache(self) -> IndexCache | None:
        """The index cache, decoded an entry at a time: one decode of 100,000 entries held the
        GIL for 0.16 s, and the event loop with it (this runs while the server answers)."""
        try:
            raw = _decode_raw_cache.decode((self.spool / INDEX_CACHE).read_bytes())
            return IndexCache(raw.tip, [_decode_index_entry.decode(e) for e in raw.entries])
        except (FileNotFoundError, msgspec.DecodeError):
            return None

    def write_cache(self, tip: str, entries: list[IndexEntry]) -> None:
        """Save the index as of floom/runs' tip, so the next start-up reads one file."""
        data = msgspec.msgpack.encode(IndexCache(tip=tip, entries=entries))
        path = self.spool / INDEX_CACHE
        with self._cache_lock:  # at shutdown and once a cold start has read everything
            atomic_write(path, data, durable=False)  # a lost cache is rebuilt from floom/runs

    def committed(self, entry: IndexEntry) -> RunRecord | None:
        """The record of `entry` as floom/runs holds it."""
        data = self.repo.read_blob(self.repo.tip(RUNS), f"{record_dir(entry)}/{RECORD}")
        return None if data is None else _decode_record.decode(data)

    # -- reads ----------------------------------------------------------------------------------
    def logs(self, record: RunRecord) -> list[LogLine]:
        if record.id in self._logs:
            return list(self._logs[record.id])
        # The spool's copy while there (a flush that committed it may remove it: then the
        # commit, which landed first, holds it).
        spooled = read_if_there(self.spool / record.id / LOGS)
        if spooled is not None:
            return list(_read_lines(spooled))
        data = self.repo.read_blob(self.repo.tip(RUNS), f"{record_dir(record)}/{LOGS}")
        return list(_read_lines(data or b""))

    def read_file(self, record: RunRecord, rel: str) -> bytes | None:
        """A file of the run's folder (e.g. artifacts/x.md), from the spool if still there."""
        spooled = read_if_there(self.spool / record.id / rel)
        if spooled is not None:
            return spooled
        return committed_and_spooled(self.repo, RUNS, f"{record_dir(record)}/{rel}",
                                     self.spool / record.id / APPEND_DIR / rel)

    # -- writes ---------------------------------------------------------------------------------
    def put(self, record: RunRecord, *, durable: bool = True) -> None:
        """Spool `record` (fsync'ed when `durable`) as its current state and plan its commit.
        Returns once the state survives a crash."""
        data = encode_record(record)
        path = self.spool / record.id / SPOOL_RECORD
        if durable:
            fsync_write(path, data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.live[record.id] = record
        self._changed(record.id)

    def _changed(self, run_id: str) -> None:
        self._versions[run_id] = self._versions.get(run_id, 0) + 1
        self._dirty.add(run_id)
        self.commits.schedule()

    def append_log(self, record: RunRecord, level: str, message: str, timestamp: str,
                   event: dict[str, Any] | None = None) -> LogLine | None:
        """Add a log line to a live run (spool file + memory); None once the cap is reached."""
        if record.id not in self._logs:
            self._resume_logs(record)
        lines = self._logs[record.id]
        cap = self.max_log_lines
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
        return line

    def _resume_logs(self, record: RunRecord) -> None:
        """The lines a run logged so far, before it logs again: none for a new run; for one that
        ended its process part and goes on (an agent resumed after its approval) those in the
        spool or on floom/runs, so the next commit keeps them all."""
        spooled = self.spool / record.id / LOGS
        if spooled.is_file():
            data = spooled.read_bytes()
        else:
            data = self.repo.read_blob(self.repo.tip(RUNS), f"{record_dir(record)}/{LOGS}") or b""
            if data:
                fsync_write(spooled, data)
        self._logs[record.id] = list(_read_lines(data))

    def close_logs(self, run_id: str) -> None:
        fh = self._log_files.pop(run_id, None)
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()

    def append_line(self, record: RunRecord, name: str, line: bytes) -> None:
        """Append one line to runs/<date>/<run_id>/<name> (durable now, committed soon)."""
        fsync_append(self.spool / record.id / APPEND_DIR / name, line)
        self.live.setdefault(record.id, record)
        self._changed(record.id)

    # -- commits --------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Commit every changed record now (one commit); then drop what the spool no longer
        needs."""
        async with self._flush_lock:
            if not self._dirty:
                return
            snaps = {rid: _Snapshot(self._versions[rid], self.live[rid],
                                    encode_record(self.live[rid]))
                     for rid in sorted(self._dirty) if rid in self.live}
            ended = {rid for rid, s in snaps.items() if s.record.ended}
            spool = self.spool
            appended = {rid: appended_sizes(spool / rid / APPEND_DIR) for rid in snaps}
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
                    for rel, size in appended[rid].items():  # up to the snapshot
                        data = read_prefix(run_spool / APPEND_DIR / rel, size)
                        consumed[(rid, rel)] = len(data)
                        have = repo.read_blob(tip, f"{base}/{rel}") or b""
                        fresh = unapplied(have, data)
                        if fresh:
                            changes[f"{base}/{rel}"] = have + fresh
                return Changeset(changes, _message(snaps))

            await self.writer.write(build, SERVER, ref=RUNS, check_worktree=False)
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

    async def close(self, what: str) -> None:
        """Stop the committer, close the log files and commit what is left (the spool keeps
        it when that fails)."""
        await self.commits.close()
        for rid in list(self._log_files):
            self.close_logs(rid)
        try:
            await self.flush()
        except Exception:
            log.exception("final commit of run records of %s failed; the spool keeps them", what)


def _message(snaps: dict[str, _Snapshot]) -> str:
    if len(snaps) == 1:
        rid, snap = next(iter(snaps.items()))
        return f"runs: {rid} {snap.record.status} ({snap.record.worker_id})"
    counts: dict[str, int] = {}
    for snap in snaps.values():
        counts[snap.record.status] = counts.get(snap.record.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"runs: record {len(snaps)} runs ({detail})"


def _last_log_seq(path: Path) -> int:
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


def _read_lines(data: bytes) -> Iterator[LogLine]:
    for raw in data.splitlines():
        if raw.strip():
            try:
                yield _decode_line.decode(raw)
            except msgspec.DecodeError:
                continue

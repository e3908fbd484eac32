"""What the crash test checks on disk after a kill and through the API after a restart: every
acknowledged write and accepted push in history, every file a person saved in a working tree in
history once the watcher synced it, `git fsck --strict`, a clean working tree, and run recovery
(queued runs run, running ones fail `interrupted_by_restart`, approvals stay pending)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pygit2

from benchmarks.crash_load import APPROVAL, CLIENT_TIMEOUT, Ack, Edit
from benchmarks.stress_server import HEADERS, ServerProcess
from floom_git.services.workspaces import read_uid

MAIN = "refs/heads/main"
RUNS = "refs/heads/floom/runs"
TERMINAL = ("completed", "failed", "cancelled")
TEMP_OBJECT = re.compile(r"^bad sha1 file: .*/objects/../tmp_obj")
RUN_DEADLINE = 60.0  # generous: queued runs drain one slot at a time on a busy machine


def workspace_dirs(data_dir: Path) -> dict[str, Path]:
    root = data_dir / "workspaces"
    return {p.name: p for p in sorted(root.iterdir()) if (p / ".git").is_dir()}


# -- acknowledged writes and pushes ----------------------------------------------------------------
def _blob(commit: pygit2.Commit | None, path: str) -> bytes | None:
    if commit is None:
        return None
    try:
        obj = commit.tree[path]
    except KeyError:
        return None
    return obj.data if obj.type == pygit2.enums.ObjectType.BLOB else None


class _History:
    """The commits reachable from main in one workspace, found by sha or 7-digit prefix."""

    def __init__(self, path: Path) -> None:
        self.repo = pygit2.Repository(str(path))
        self.tip = self.repo.lookup_reference(MAIN).peel(pygit2.Commit)
        self.by_prefix: dict[str, list[pygit2.Commit]] = {}
        for commit in self.repo.walk(self.tip.id):
            self.by_prefix.setdefault(str(commit.id)[:7], []).append(commit)

    def reachable(self, sha: str) -> pygit2.Commit | None:
        found = [c for c in self.by_prefix.get(sha[:7], []) if str(c.id).startswith(sha)]
        return found[0] if len(found) == 1 else None

    def exists(self, sha: str) -> bool:
        try:
            self.repo.revparse_single(sha)
            return True
        except (KeyError, ValueError, pygit2.GitError):
            return False


def missing_acks(data_dir: Path, acks: list[Ack]) -> list[tuple[Ack, str]]:
    """Acknowledged writes that are not in history, each with the reason: its commit must be
    reachable from main and hold the marker; a path written once must still hold it at the tip."""
    problems = []
    histories = {ws: _History(p) for ws, p in workspace_dirs(data_dir).items()}
    for ack in acks:
        reason = _missing(histories.get(ack.workspace), ack)
        if reason:
            problems.append((ack, f"acknowledged {ack.kind} {ack.marker} lost: {reason}"))
    return problems


def _missing(history: _History | None, ack: Ack) -> str | None:
    if history is None:
        return f"workspace {ack.workspace} is gone"
    if ack.sha:
        commit = history.reachable(ack.sha)
        if commit is None:
            where = "is not reachable from main" if history.exists(ack.sha) else "does not exist"
            return f"commit {ack.sha} {where}"
        if ack.marker.encode() not in (_blob(commit, ack.path) or b""):
            return f"{ack.path} at {ack.sha} lacks the marker"
    if ack.unique and ack.marker.encode() not in (_blob(history.tip, ack.path) or b""):
        return f"{ack.path} at main ({str(history.tip.id)[:7]}) lacks the marker"
    return None


def missing_edits(data_dir: Path, edits: list[Edit]) -> list[tuple[Edit, str]]:
    """Saved edits whose marker no commit on main holds at their path: last save wins, and
    history holds both, so every save that was the last one of its file must be there."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for edit in edits:
        wanted.setdefault((edit.workspace, edit.path), set()).add(edit.marker)
    seen: dict[tuple[str, str], bytes] = {}
    for ws, path in workspace_dirs(data_dir).items():
        repo = pygit2.Repository(str(path))
        mine = {p for w, p in wanted if w == ws}
        if not mine:
            continue
        for commit in repo.walk(repo.lookup_reference(MAIN).peel(pygit2.Commit).id):
            for rel in mine:
                data = _blob(commit, rel)
                if data:
                    seen[(ws, rel)] = seen.get((ws, rel), b"") + data
    return [(e, f"saved edit {e.marker} of {e.workspace}/{e.path} is not in history")
            for e in edits if e.marker.encode() not in seen.get((e.workspace, e.path), b"")]


def fsck(data_dir: Path, *, crashed: bool = False) -> list[str]:
    """`git fsck --strict` of every workspace; one line per repository it does not accept. On a
    repository as a crash left it, half-written temporary objects are expected (start-up
    removes them); anywhere else fsck must print nothing at all."""
    problems = []
    for ws, path in workspace_dirs(data_dir).items():
        proc = subprocess.run(["git", "-C", str(path), "fsck", "--strict", "--no-dangling",
                               "--no-progress"], capture_output=True, text=True, check=False)
        out = [line for line in (proc.stdout + proc.stderr).splitlines()
               if not (crashed and TEMP_OBJECT.search(line))]
        if proc.returncode != 0 or out:
            problems.append(f"git fsck --strict in {ws} exited {proc.returncode}: "
                            + " | ".join(out[:8]))
    return problems


def dirty_worktrees(data_dir: Path) -> list[str]:
    """Workspaces whose working tree or index differ from HEAD (once the watcher has synced
    what people saved, nothing may)."""
    problems = []
    for ws, path in workspace_dirs(data_dir).items():
        proc = subprocess.run(["git", "--no-optional-locks", "-C", str(path), "status",
                               "--porcelain"], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or proc.stdout.strip():
            problems.append(f"working tree of {ws} is not clean after recovery: "
                            + " | ".join((proc.stdout + proc.stderr).splitlines()[:8]))
    return problems


# -- runs ----------------------------------------------------------------------------------------
def run_states(data_dir: Path) -> dict[str, dict[str, tuple[str, str | None]]]:
    """{ws: {run id: (status, approval status)}} as a crash left them on disk: the records on
    floom/runs with the spool (newer, fsync'ed before any answer) laid over them."""
    out: dict[str, dict[str, tuple[str, str | None]]] = {}
    for ws, path in workspace_dirs(data_dir).items():
        states: dict[str, tuple[str, str | None]] = {}
        repo = pygit2.Repository(str(path))
        try:
            tip = repo.lookup_reference(RUNS).peel(pygit2.Commit)
        except (KeyError, pygit2.GitError):
            tip = None
        if tip is not None and "runs" in tip.tree:
            for day in repo[tip.tree["runs"].id]:
                for run in repo[day.id]:
                    tree = repo[run.id]
                    if "run.json" in tree:
                        states[run.name] = _state(repo[tree["run.json"].id].data)
        spool = data_dir / "spool" / (read_uid(path) or ws)  # the spool is keyed by internal id
        if spool.is_dir():
            for record in spool.glob("run_*/record.json"):
                states[record.parent.name] = _state(record.read_bytes())
        out[ws] = states
    return out


def _state(data: bytes) -> tuple[str, str | None]:
    record = json.loads(data)
    approval = record.get("approval") or {}
    return record["status"], approval.get("status")


async def check_recovery(
    server: ServerProcess,
    before: dict[str, dict[str, tuple[str, str | None]]],
    acked_runs: dict[str, tuple[str, str]],
    recovered: Counter,
    sample: list[str],
) -> list[str]:
    """After a restart: what each run became compared with its state at the crash. Waits for
    runs that were queued to run. `sample` names terminal runs to re-check (they must not
    change)."""
    problems = []
    async with aiohttp.ClientSession(headers=HEADERS, timeout=CLIENT_TIMEOUT) as session:
        for rid, (ws, _worker) in acked_runs.items():
            if rid not in before.get(ws, {}):
                problems.append(f"run {rid} was acknowledged but has no record after the crash")
        for ws, states in before.items():
            for rid, (status, approval) in states.items():
                if status in TERMINAL and rid not in sample:
                    continue
                problem = await _check_run(session, server, ws, rid, status, approval, recovered)
                if problem:
                    problems.append(problem)
    return problems


async def _get_run(session: aiohttp.ClientSession, server: ServerProcess, ws: str,
                   rid: str) -> dict | None:
    async with session.get(f"{server.base}/api/runs/{rid}",
                           headers={"x-workeros-workspace": ws}) as resp:
        return await resp.json() if resp.status == 200 else None


async def _check_run(session: aiohttp.ClientSession, server: ServerProcess, ws: str, rid: str,
                     status: str, approval: str | None, recovered: Counter) -> str | None:
    run = await _get_run(session, server, ws, rid)
    if run is None:
        return f"run {rid} ({status} at the crash) is not found after the restart"
    now = run["status"]
    if status == "running":
        recovered["running -> interrupted_by_restart"] += 1
        if now != "failed" or run.get("error_code") != "interrupted_by_restart":
            return f"run {rid} was running at the crash but is {now} ({run.get('error_code')})"
    elif status == "queued":
        end = time.monotonic() + RUN_DEADLINE
        while now in ("queued", "running") and time.monotonic() < end:
            await asyncio.sleep(0.1)
            run = await _get_run(session, server, ws, rid) or run
            now = run["status"]
        expected = "pending_approval" if run.get("worker_id") == APPROVAL else "completed"
        recovered["queued -> ran"] += 1
        if now != expected:
            return (f"run {rid} was queued at the crash; after the restart it is {now} "
                    f"({run.get('error_code')}: {run.get('error')}), expected {expected}")
    elif status == "pending_approval" and approval == "pending":
        recovered["pending approval kept"] += 1
        kept = (run.get("approval") or {}).get("status")
        if now != "pending_approval" or kept != "pending":
            return f"run {rid} awaited approval at the crash but is {now} (approval {kept})"
    elif now != status:
        return f"run {rid} was {status} at the crash but is {now} after the restart"
    return None


async def settled_worktrees(data_dir: Path, deadline: float = 30.0) -> list[str]:
    """dirty_worktrees once the watcher has had time to commit the edits saved before the kill
    (it reconciles the whole tree at start-up, then after each quiet period)."""
    end = time.monotonic() + deadline
    while True:
        problems = await asyncio.to_thread(dirty_worktrees, data_dir)
        if not problems or time.monotonic() > end:
            return problems
        await asyncio.sleep(0.2)


async def health_problems(server: ServerProcess) -> list[str]:
    """After a restart, /health/details must find every repository readable and the scheduler
    alive, and /metrics must answer."""
    async with aiohttp.ClientSession(headers=HEADERS, timeout=CLIENT_TIMEOUT) as session:
        async with session.get(server.base + "/api/health/details") as resp:
            if resp.status != 200:
                return [f"GET /health/details -> {resp.status} {await resp.text()}"]
            checks = (await resp.json())["checks"]
        async with session.get(server.base + "/metrics") as resp:
            scraped = resp.status
    problems = [f"repository {ws} unhealthy after the restart: {c}"
                for ws, c in checks["repositories"]["workspaces"].items() if not c["ok"]]
    if not checks["scheduler"]["ok"]:
        problems.append(f"scheduler not running after the restart: {checks['scheduler']}")
    if scraped != 200:
        problems.append(f"GET /metrics -> {scraped} after the restart")
    return problems


async def runs_by_status(server: ServerProcess, workspaces: list[str]) -> Counter:
    counts: Counter = Counter()
    async with aiohttp.ClientSession(headers=HEADERS, timeout=CLIENT_TIMEOUT) as session:
        for ws in workspaces:
            offset = 0
            while True:
                async with session.get(f"{server.base}/api/runs?limit=200&offset={offset}",
                                       headers={"x-workeros-workspace": ws}) as resp:
                    page = await resp.json()
                counts.update(r["status"] for r in page)
                if len(page) < 200:
                    break
                offset += 200
    return counts

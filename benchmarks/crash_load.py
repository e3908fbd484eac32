"""The mixed load the crash test drives between kills: API writes to contexts, workers, issues and
workspace.md, git pushes with the real git client (some turning a file into a folder or back),
people saving files in the server's working trees (some that API writes and pushes also change),
and runs. Every acknowledged write is recorded as an Ack (what it changed, a unique marker, the
commit the server or git named); every saved edit as an Edit."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.stress_server import HEADERS, ServerProcess

TEMPLATE = Path(__file__).resolve().parent.parent / "workspace_template"
WORKER_YML = """schema_version: "0.3"
name: {name}
title: Stress {name}
description: "{marker}"
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: text
      type: string
      required: true
{extra}"""
APPROVAL = "stress-approve"  # a worker whose runs stop in pending_approval
# (kind, weight): how often each API write is picked.
API_KINDS = (("context", 5), ("context-hot", 2), ("worker", 2), ("issue", 2), ("comment", 2),
             ("instructions", 1))
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass
class Ack:
    """A write the server acknowledged (2xx) or a push git reported accepted."""

    kind: str
    workspace: str
    path: str  # the file it changed, relative to the repository root
    marker: str  # unique text that the file holds from that commit on
    sha: str | None  # the commit the server or git named (7 hex digits or full)
    unique: bool  # the path is written once, so the marker must be at the tip of main too


@dataclass
class Edit:
    """A file a person saved in a workspace's working tree: `marker` must reach history."""

    workspace: str
    path: str
    marker: str


@dataclass
class Load:
    """What all bursts produced (shared by every client task)."""

    workspaces: tuple[str, ...]  # API writes favour the first; pushes go to the last
    work: Path
    rng: random.Random
    acks: list[Ack] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    data_dir: Path | None = None  # the server's, where people edit working trees
    refused_over_edits: int = 0  # API writes or pushes refused over an unsynced edit (expected)
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # run id -> (ws, worker)
    issues: dict[str, list[str]] = field(default_factory=dict)  # ws -> acknowledged issue ids
    errors: list[str] = field(default_factory=list)  # 5xx answers from a live server
    refusals: list[str] = field(default_factory=list)  # 4xx answers (none is expected)
    cut: int = 0  # requests and pushes cut off by the kill (outcome unknown)
    pushes_rejected: int = 0  # non-fast-forward (raced an API write), retried
    attempts: Counter = field(default_factory=Counter)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def marker(self) -> str:
        return f"m{next(self.counter)}-{secrets.token_hex(4)}"

    @property
    def push_workspace(self) -> str:
        return self.workspaces[-1]

    def api_workspace(self) -> str:
        # Few API writes where the pushes go (some, to race them), or every push loses.
        weights = [19] * (len(self.workspaces) - 1) + [1] if len(self.workspaces) > 1 else [1]
        return self.rng.choices(self.workspaces, weights)[0]

    def answer(self, what: str, status: int, body: bytes) -> None:
        line = f"{what} -> {status} {body[:300].decode(errors='replace')}"
        if status == 409 and b"uncommitted on-disk edits" in body:
            self.refused_over_edits += 1  # the rule working: the person's edit is synced first
            return
        (self.errors if status >= 500 else self.refusals).append(line)


async def setup(load: Load, server: ServerProcess, pushers: int) -> None:
    """Create the extra workspaces, the approval worker in each, and the pushers' clones."""
    async with aiohttp.ClientSession(headers=HEADERS, timeout=CLIENT_TIMEOUT) as session:
        for ws in load.workspaces:
            if ws != "default":
                async with session.post(server.base + "/api/workspaces", json={"id": ws}) as r:
                    if r.status not in (200, 201):
                        raise RuntimeError(f"create workspace {ws}: {r.status} {await r.text()}")
            run_py = (TEMPLATE / "workers" / "word-count" / "run.py").read_text()
            yml = WORKER_YML.format(name=APPROVAL, marker="approval worker",
                                    extra="approvals:\n  required: true\n")
            async with session.post(server.base + "/api/workers", json={"worker_yml": yml,
                                    "run_py": run_py}, headers={"x-workeros-workspace": ws}) as r:
                if r.status != 201:
                    raise RuntimeError(f"create {APPROVAL} in {ws}: {r.status} {await r.text()}")
    for j in range(pushers):
        code, out = await git(load.work, "clone", "-q", server.git_url(load.push_workspace),
                              str(load.work / f"push{j}"))
        if code != 0:
            raise RuntimeError(f"git clone failed: {out}")


async def burst(load: Load, server: ServerProcess, kill_after: float, writers: int,
                pushers: int, runners: int, kill_group: bool = True, editors: int = 1) -> None:
    """Drive every kind of load until `kill_after` seconds have passed, then SIGKILL the server
    mid-flight and let each client notice."""
    stop = asyncio.Event()
    async with aiohttp.ClientSession(headers=HEADERS, timeout=CLIENT_TIMEOUT) as session:
        tasks = [
            asyncio.create_task(_writer(load, server, session, i, stop)) for i in range(writers)
        ]
        tasks += [asyncio.create_task(_pusher(load, server, j, stop)) for j in range(pushers)]
        tasks += [asyncio.create_task(_editor(load, k, stop)) for k in range(editors)]
        tasks += [asyncio.create_task(_runner(load, server, session, stop)) for _ in range(runners)]
        await asyncio.sleep(kill_after)
        server.kill(group=kill_group)
        stop.set()
        await asyncio.gather(*tasks)


def _cut(load: Load) -> None:
    load.cut += 1


async def _writer(load: Load, server: ServerProcess, session: aiohttp.ClientSession, wid: int,
                  stop: asyncio.Event) -> None:
    kinds, weights = zip(*API_KINDS, strict=True)
    while not stop.is_set():
        kind = load.rng.choices(kinds, weights)[0]
        ws = load.api_workspace()
        if kind == "comment" and not load.issues.get(ws):
            kind = "issue"
        load.attempts[kind] += 1
        try:
            await _api_write(load, server, session, kind, ws, wid)
        except (TimeoutError, aiohttp.ClientError, OSError):
            _cut(load)
            return


async def _api_write(load: Load, server: ServerProcess, session: aiohttp.ClientSession, kind: str,
                     ws: str, wid: int) -> None:
    marker = load.marker()
    hdr = {"x-workeros-workspace": ws}
    api = server.base + "/api"
    if kind in ("context", "context-hot"):
        rel = f"stress/w{wid}/{marker}.md" if kind == "context" else f"stress/hot-{wid}.md"
        method, url, path = "PUT", f"{api}/contexts/company/files/{rel}", f"contexts/company/{rel}"
        kw: dict = {"data": f"{marker}\n", "headers": {**hdr, "content-type": "text/markdown"}}
    elif kind == "worker":
        name = f"sw-{marker.split('-')[0]}"
        yml = WORKER_YML.format(name=name, marker=marker, extra="")
        method, url, path = "POST", f"{api}/workers", f"workers/{name}/worker.yml"
        kw = {"json": {"worker_yml": yml, "run_py": "print('hi')\n"}, "headers": hdr}
    elif kind == "issue":
        method, url, path = "POST", f"{api}/workspace/issues", ""
        kw = {"json": {"title": f"stress {marker}", "body": marker}, "headers": hdr}
    elif kind == "comment":
        issue = load.rng.choice(load.issues[ws])
        method, url = "POST", f"{api}/workspace/issues/{issue}/comments"
        path = f".floom/issues/{issue}.comments.ndjson"
        kw = {"json": {"body": marker}, "headers": hdr}
    else:
        method, url, path = "PUT", f"{api}/workspace", "workspace.md"
        kw = {
            "data": f"# Stress\n\n{marker}\n",
            "headers": {**hdr, "content-type": "text/markdown"},
        }
    async with session.request(method, url, **kw) as resp:
        body = await resp.read()
        if resp.status >= 300:
            load.answer(f"{method} {url[len(server.base):]}", resp.status, body)
            return
        data = await resp.json(content_type=None)
    sha = data.get("sha") if isinstance(data, dict) else None
    if kind == "issue":
        path = f".floom/issues/{data['id']}.md"
        load.issues.setdefault(ws, []).append(data["id"])
    unique = kind in ("context", "worker", "issue", "comment")
    load.acks.append(Ack(kind, ws, path, marker, sha, unique))


async def _runner(load: Load, server: ServerProcess, session: aiohttp.ClientSession,
                  stop: asyncio.Event) -> None:
    while not stop.is_set():
        ws = load.rng.choice(load.workspaces)
        worker = APPROVAL if load.rng.random() < 0.25 else "word-count"
        load.attempts["run"] += 1
        try:
            async with session.post(f"{server.base}/api/workers/{worker}/runs",
                                    json={"inputs": {"text": load.marker()}},
                                    headers={"x-workeros-workspace": ws}) as resp:
                body = await resp.read()
                if resp.status >= 300:
                    load.answer(f"POST /api/workers/{worker}/runs", resp.status, body)
                else:
                    data = await resp.json(content_type=None)
                    load.runs[data["run_id"]] = (ws, worker)
        except (TimeoutError, aiohttp.ClientError, OSError):
            _cut(load)
            return
        try:  # a few runs per burst: enough to have some queued and some running at the kill
            await asyncio.wait_for(stop.wait(), load.rng.uniform(0.1, 0.4))
        except TimeoutError:
            pass


async def _pusher(load: Load, server: ServerProcess, j: int, stop: asyncio.Event) -> None:
    repo = load.work / f"push{j}"
    url = server.git_url(load.push_workspace)
    while not stop.is_set():
        marker = load.marker()
        reshape = load.rng.random() < 0.4  # turn this pusher's `shape` into a folder or a file
        load.attempts["push-reshape" if reshape else "push"] += 1
        while not stop.is_set():  # until accepted: a non-fast-forward lost a race, go again
            code, out = await git(repo, "fetch", "-q", url, "main")
            if code != 0:
                _cut(load)
                return
            await git(repo, "reset", "-q", "--hard", "FETCH_HEAD")
            rel = _reshape(repo, j, marker) if reshape else _new_file(repo, j, marker)
            await git(repo, "add", "-A", "contexts/company/stress")
            await git(repo, "commit", "-q", "-m", f"stress: push {marker}")
            code, out = await git(repo, "push", "--porcelain", url, "HEAD:refs/heads/main")
            if code == 0:
                _, sha = await git(repo, "rev-parse", "HEAD")
                load.acks.append(Ack("push", load.push_workspace, rel, marker, sha.strip(),
                                     not reshape))
                break
            if any(race in out for race in RACES):
                load.pushes_rejected += 1
                if "uncommitted on-disk edits" in out:
                    load.refused_over_edits += 1
                    await asyncio.sleep(0.2)  # the watcher commits the edit after its quiet time
                continue
            if "remote rejected" in out or "pre-receive hook declined" in out:
                load.refusals.append(f"git push refused: {out[-500:]}")
            else:
                _cut(load)  # the server went away mid-push
            return


def _new_file(repo: Path, j: int, marker: str) -> str:
    rel = f"contexts/company/stress/push{j}/{marker}.md"
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(f"{marker}\n")
    if j == 0:  # one pusher also changes the file a person edits on the server now and then
        shared = repo / SHARED
        shared.parent.mkdir(parents=True, exist_ok=True)
        shared.write_text(f"{marker}\n")
    return rel


def _reshape(repo: Path, j: int, marker: str) -> str:
    """`shape` a file -> a folder holding a file, or the folder -> a file again."""
    shape = repo / f"contexts/company/stress/push{j}/shape"
    if shape.is_dir():
        shutil.rmtree(shape)
        shape.write_text(f"{marker}\n")
        return shape.relative_to(repo).as_posix()
    if shape.exists():
        shape.unlink()
    inner = shape / "deeper" / f"{marker}.md"
    inner.parent.mkdir(parents=True)
    inner.write_text(f"{marker}\n")
    return inner.relative_to(repo).as_posix()


SHARED = "contexts/company/stress/shared.md"  # pushed by pusher 0, and edited on the server


async def _editor(load: Load, k: int, stop: asyncio.Event) -> None:
    """A person saving files in the server's working trees as an editor does (write, rename):
    mostly new files, and once per burst a file that API writes or pushes also change."""
    if load.data_dir is None:
        return
    shared = {(load.workspaces[0], "contexts/company/stress/hot-0.md"),
              (load.push_workspace, SHARED)}
    while not stop.is_set():
        marker = load.marker()
        if shared and load.rng.random() < 0.3:
            ws, rel = shared.pop()
        else:
            ws, rel = (
                load.rng.choice(load.workspaces),
                f"contexts/company/stress/disk{k}/{marker}.md",
            )
        target = load.data_dir / "workspaces" / ws / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.swp")
            tmp.write_text(f"{marker}\n")
            os.replace(tmp, target)
        except OSError as exc:  # a folder the server was replacing at that moment: try another
            load.refusals.append(f"disk edit of {ws}/{rel} failed: {exc}")
            continue
        load.edits.append(Edit(ws, rel, marker))
        load.attempts["disk edit"] += 1
        try:
            await asyncio.wait_for(stop.wait(), load.rng.uniform(0.05, 0.3))
        except TimeoutError:
            pass


# What git or the pre-receive hook answer when main moved between fetch and push.
RACES = ("[rejected]", "non-fast-forward", "fetch first", "changed on the server while you pushed",
         "uncommitted on-disk edits")
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "stress", "GIT_AUTHOR_EMAIL": "stress@floom.local",
    "GIT_COMMITTER_NAME": "stress", "GIT_COMMITTER_EMAIL": "stress@floom.local",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


async def git(cwd: Path, *args: str) -> tuple[int, str]:
    """Run the real git client; (exit code, stdout and stderr together)."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=str(cwd), env={**os.environ, **GIT_ENV},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")

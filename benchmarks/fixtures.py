"""Benchmark data: workspaces made the way the server makes them, then given a long history
quickly with `git fast-import` (before the server starts), plus a commit-graph with Bloom
filters."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from floom_git.config import Settings
from floom_git.services.workspaces import WorkspaceManager

TARGET = "bench-target"
WORKER_YML = """schema_version: "0.3"
name: {name}
title: {title}
description: A benchmark worker.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: text
      type: string
      required: true
example_input:
  text: hello
"""
CONTEXT_FILES = 400  # like the 10k-commit repository measured in ENGINEERING-NOTES §1.1
BASE_TS = 1_750_000_000


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def create_workspaces(data_dir: Path, ids: list[str]) -> None:
    """Create workspaces exactly as the server does on first start (template, one commit)."""
    manager = WorkspaceManager(Settings(data_dir=data_dir, watch=False))
    for ws_id in ids:
        manager.create_sync(ws_id)


def _blob(data: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(data), data)


def _stream(parent: str, commits: int, workers: int, touch_every: int) -> bytes:
    """A fast-import stream: `workers` workers created first (plus TARGET), TARGET touched every
    `touch_every` commits, every other commit edits one of CONTEXT_FILES context files."""
    out: list[bytes] = []
    for i in range(commits):
        who = b"Bench <bench@floom.local> %d +0000" % (BASE_TS + i)
        files: dict[str, bytes] = {}
        if i == 0:
            msg = f"worker: create {TARGET}"
            files[f"workers/{TARGET}/worker.yml"] = WORKER_YML.format(
                name=TARGET, title="Target"
            ).encode()
            files[f"workers/{TARGET}/run.py"] = b"print('v0')\n"
        elif i <= workers:
            wid = f"bench-w{i:03d}"
            msg = f"worker: create {wid}"
            files[f"workers/{wid}/worker.yml"] = WORKER_YML.format(
                name=wid, title=f"W {i}"
            ).encode()
            files[f"workers/{wid}/run.py"] = b"print('hi')\n"
        elif i % touch_every == 0:
            msg = f"worker {TARGET}: update run.py"
            files[f"workers/{TARGET}/run.py"] = b"print('v%d')\n" % i
        else:
            name = f"f{i % CONTEXT_FILES:03d}.md"
            msg = f"context history: update {name}"
            files[f"contexts/history/{name}"] = b"# history\n\nrevision %d\n" % i
        out.append(b"commit refs/heads/main\nauthor %s\ncommitter %s\n" % (who, who))
        out.append(_blob(msg.encode()))
        if i == 0:
            out.append(b"from %s\n" % parent.encode())
        for path, data in files.items():
            out.append(b"M 100644 inline %s\n" % path.encode())
            out.append(_blob(data))
        out.append(b"\n")
    return b"".join(out)


def add_history(repo: Path, commits: int, workers: int = 0, touch_every: int = 100) -> None:
    """Append `commits` commits to main, update the working tree, write the commit-graph."""
    parent = git(repo, "rev-parse", "main").strip()
    git(repo, "fast-import", "--quiet", input=_stream(parent, commits, workers, touch_every))
    # The server is not running yet: bring its working tree and index up to the new main.
    git(repo, "read-tree", "-m", "-u", parent, "main")
    git(repo, "commit-graph", "write", "--reachable", "--changed-paths")


def _run_record(i: int, day: int, status: str = "completed") -> tuple[str, bytes]:
    """The path and run.json of the `i`th synthetic word-count run (as the server writes them:
    every RunRecord field, nulls included); completed unless `status` says otherwise."""
    import json

    run_id = f"run_{i:012x}"
    created = BASE_TS + day * 86_400 + i % 86_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    record = {
        "id": run_id,
        "worker_id": "word-count",
        "worker_name": "Word count",
        "worker_sha": "0" * 40,
        "status": status,
        "trigger_source": "manual",
        "trigger_ref": None,
        "created_by": None,
        "inputs": {"text": "a b c"},
        "outputs": {"words": 3, "lines": 1, "longest": "a"},
        "error": None,
        "error_code": None,
        "exit_code": 0,
        "created_at": f"{stamp}.000Z",
        "started_at": f"{stamp}.010Z",
        "completed_at": f"{stamp}.090Z",
        "duration_ms": 80,
        "approval": None,
        "approval_of": None,
        "artifacts": [],
        "timeline": [],
        "seq": 3,
    }
    path = f"runs/{stamp[:10]}/{run_id}/run.json"
    return path, json.dumps(record, indent=2).encode() + b"\n"


def add_run_records(repo: Path, records: int, per_commit: int = 1_000,
                    statuses: dict[int, str] | None = None) -> None:
    """Write `records` run records onto refs/heads/floom/runs with `git fast-import`,
    `per_commit` runs per commit (the server groups record commits too), 1,000 runs a day; run
    `i` is completed unless `statuses` names another status for it."""
    out: list[bytes] = []
    for first in range(0, records, per_commit):
        who = b"floom <system@floom.local> %d +0000" % (BASE_TS + first)
        out.append(b"commit refs/heads/floom/runs\nauthor %s\ncommitter %s\n" % (who, who))
        out.append(_blob(b"runs: %d records" % min(per_commit, records - first)))
        for i in range(first, min(records, first + per_commit)):
            path, data = _run_record(i, i // 1_000, (statuses or {}).get(i, "completed"))
            out.append(b"M 100644 inline %s\n" % path.encode())
            out.append(_blob(data))
        out.append(b"\n")
    git(repo, "fast-import", "--quiet", input=b"".join(out))

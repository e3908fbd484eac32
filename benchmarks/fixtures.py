"""Benchmark data: workspaces made the way the server makes them, then given a long history
quickly with `git fast-import` (before the server starts), plus a commit-graph with Bloom filters."""

from __future__ import annotations

import subprocess
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

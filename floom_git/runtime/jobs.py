"""What a run executes, read from the worker's pinned commit: its files (no symlinks, caches or
secret files), the context packs it declares, its command and limits. The home node builds it
from the workspace repository; a remote executor builds the same from its fetched copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floom_git import paths
from floom_git.config import Settings
from floom_git.runtime.executor import Job
from floom_git.schemas.manifest import Manifest
from floom_git.storage.git_types import Commit, FileMode
from floom_git.storage.repo import WorkspaceRepo

SKIP_PARTS = {"__pycache__", ".venv", "node_modules", "inputs"}


def egress(manifest: Manifest) -> bool:
    """`capabilities.network.egress: true` (REFERENCE §1.8): the run shares the host's network."""
    network = (manifest.capabilities or {}).get("network")
    return isinstance(network, dict) and network.get("egress") is True


def worker_files(repo: WorkspaceRepo, commit: Commit,
                 worker_id: str) -> dict[str, tuple[bytes, bool]]:
    """The worker's files at `commit`: path -> (content, executable)."""
    files: dict[str, tuple[bytes, bool]] = {}
    for rel, blob in repo.files_at(commit, paths.worker_dir(worker_id)).items():
        parts = rel.split("/")
        if (blob.filemode == FileMode.LINK or SKIP_PARTS & set(parts[:-1])
                or rel.endswith((".pyc", ".pyo")) or paths.is_secret_file(rel)):
            continue
        files[rel] = (blob.data, blob.filemode == FileMode.BLOB_EXECUTABLE)
    return files


def context_files(repo: WorkspaceRepo, commit: Commit,
                  manifest: Manifest) -> dict[str, dict[str, bytes]]:
    """The context packs the manifest names, at `commit`: name -> {path: content}."""
    contexts: dict[str, dict[str, bytes]] = {}
    for item in list(manifest.contexts) + list(manifest.exec.contexts):
        name = (
            item if isinstance(item, str) else item.get("name") if isinstance(item, dict) else None
        )
        if isinstance(name, str) and paths.CONTEXT_NAME_RE.match(name):
            contexts[name] = {rel: b.data
                              for rel, b in repo.files_at(commit, paths.context_dir(name)).items()
                              if b.filemode != FileMode.LINK and not paths.is_secret_file(rel)}
    return contexts


def build_job(repo: WorkspaceRepo, *, run_id: str, worker_id: str, worker_sha: str,
              inputs: dict[str, Any], manifest: Manifest, secrets: dict[str, str],
              settings: Settings, spool: Path, workspace_name: str,
              artifacts: str = "artifacts") -> Job:
    """The Job of one run; `spool` is the run's own folder (scratch dir and artifacts inside)."""
    commit = repo.resolve(worker_sha)
    timeout = min(manifest.limits.timeout_seconds, settings.max_run_timeout_seconds)
    return Job(
        run_id=run_id, worker_id=worker_id, command=manifest.command or "python run.py",
        workdir=spool / "work", artifacts_dir=spool / artifacts,
        files=worker_files(repo, commit, worker_id), inputs=inputs, timeout=float(timeout),
        secrets=secrets, contexts=context_files(repo, commit, manifest),
        memory_mb=manifest.limits.memory_mb, extra_env={"FLOOM_WORKSPACE_ID": workspace_name},
        network=egress(manifest),
    )

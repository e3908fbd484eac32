"""Whether a workspace's agents can run: the effective agent configuration (workspace.yml `agent:`
at the tip of main, a worker's `model:`, the key from the workspace's secrets), or why an agent
worker or the workspace chat needs setup."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from floom_git import paths
from floom_git.agents.config import AgentConfig, NeedsSetup, resolve_agent_config
from floom_git.codec import load_yaml
from floom_git.errors import Conflict, InvalidInput
from floom_git.services.workspaces import Workspace
from floom_git.storage.git_types import Blob

_parsed: dict[str, Any] = {}  # blob id -> parsed workspace.yml, or the InvalidInput it raised
MAX_CACHED = 256
# How often workspace.yml was looked up at the tip: a listing reads it once per page, not once
# per agent worker (tests/http/test_workers.py holds that).
READS: Counter[str] = Counter()


@dataclass(frozen=True)
class Meta:
    """workspace.yml as read once (for a page of workers): its parsed value, or why it is bad."""

    value: Any = None
    error: InvalidInput | None = None


def read_meta(ws: Workspace) -> Meta:
    try:
        return Meta(workspace_yml(ws))
    except InvalidInput as exc:
        return Meta(error=exc)


def workspace_yml(ws: Workspace) -> Any:
    """workspace.yml at the tip of main, parsed (None when absent). Raises InvalidInput."""
    READS[paths.WORKSPACE_YML] += 1
    entry = ws.repo.entry(ws.repo.tip(), paths.WORKSPACE_YML)
    if not isinstance(entry, Blob):  # absent (a folder of that name is refused on push)
        return None
    key = str(entry.id)
    if key not in _parsed:
        if len(_parsed) > MAX_CACHED:
            _parsed.clear()
        try:
            _parsed[key] = load_yaml(entry.data, where=paths.WORKSPACE_YML)
        except InvalidInput as exc:
            _parsed[key] = exc
    value = _parsed[key]
    if isinstance(value, InvalidInput):
        raise value
    return value


def resolve(ws: Workspace, model: str | None, secret: Callable[[str], str | None],
            meta: Meta | None = None) -> AgentConfig | NeedsSetup:
    """The configuration an agent of `ws` runs with (`model`: a worker's override), or why not;
    `secret(name)` is the value of a workspace secret or None; `meta` workspace.yml when the
    caller read it already."""
    meta = read_meta(ws) if meta is None else meta
    if meta.error is not None:
        return NeedsSetup(meta.error.message)
    return resolve_agent_config(meta.value, model, secret)


async def workspace_agent(ws: Workspace, secret: Callable[[str], str | None]) -> AgentConfig:
    """The configuration the workspace chat runs with (read off the event loop); Conflict naming
    what it needs when it cannot run."""
    config = await asyncio.to_thread(resolve, ws, None, secret)
    if isinstance(config, NeedsSetup):
        raise Conflict(f"The workspace agent needs setup: {config.reason}")
    return config


def setup_problem(ws: Workspace, model: str | None,
                  secret_names: Collection[str] | None = None,
                  meta: Meta | None = None) -> str | None:
    """Why an agent of `ws` cannot run now (for a worker's `error` and a trigger's 409), else
    None. Only the names of the secrets are read, never their values."""
    names = ws.secret_names() if secret_names is None else secret_names
    found = resolve(ws, model, lambda name: "set" if name in names else None, meta)
    return found.reason if isinstance(found, NeedsSetup) else None

"""What a worker looks like in responses (REFERENCE §2.2): list items and detail, computed from
the worker registry (the working tree), the run index and the caller (role, stars, webhook URL).
Write routes answer with the same detail, so a client sees one shape everywhere."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from floom_git import paths
from floom_git.errors import Conflict
from floom_git.schemas.api import (
    FileOut,
    Permissions,
    TriggerSpec,
    WorkerContext,
    WorkerDetail,
    WorkerSummary,
)
from floom_git.schemas.base import plain
from floom_git.schemas.connections import ConnectionEntry
from floom_git.schemas.manifest import Manifest, Trigger
from floom_git.services import (
    agent_setup,
    connection_files,
    contexts,
    run_stats,
    run_views,
    runs,
    workers,
)
from floom_git.services.actor import ROLES
from floom_git.services.files import file_out
from floom_git.services.registry import WorkerEntry
from floom_git.services.workspaces import Workspace

RECENT_RUNS = 10
MAX_CACHED = 4096
# (id(manifest), shape) -> (the manifest, the summary fields it decides)
_DESCRIBED: dict[tuple[int, str], tuple[Manifest, dict[str, Any]]] = {}
SCHEDULE_KINDS = ("schedule", "cron", "scheduled")


def _no_url(_worker_id: str) -> str | None:
    return None


@dataclass(frozen=True)
class Viewer:
    """Who is looking: their role in the workspace, their stars, and how to build the webhook
    URL of a worker (None while it has no secret)."""

    role: str
    starred: frozenset[str] = frozenset()
    webhook_url: Callable[[str], str | None] = field(default=_no_url)


@functools.cache
def permissions(role: str) -> Permissions:
    """Workers have no per-person owner here: the workspace role decides (README, permissions).
    One value per role, shared by every response (they only encode it)."""
    rank = ROLES.index(role) if role in ROLES else -1
    writer = rank >= ROLES.index("member")
    return Permissions(is_owner=role == "owner", can_view=rank >= 0, can_edit=writer,
                       can_run=writer, can_delete=writer, can_share=writer)


def _kind(t: Trigger) -> str:
    return "schedule" if t.type in SCHEDULE_KINDS else t.type


def trigger_label(t: Trigger) -> str:
    kind = _kind(t)
    if kind == "schedule":
        when = t.cron or (f"every {t.every}" + (f" at {t.at}" if t.at else "") if t.every else "")
        return f"schedule: {when} ({t.timezone or 'UTC'})"
    if kind == "composio" and t.composio and isinstance(t.composio.get("event"), str):
        return f"composio: {t.composio['event']}"
    return kind


def trigger_specs(m: Manifest) -> list[TriggerSpec]:
    return [TriggerSpec(type=_kind(t), cron=t.cron, timezone=t.timezone,
                        webhook=plain(t.webhook) if t.webhook else None, composio=t.composio,
                        label=trigger_label(t))
            for t in m.all_triggers]


@dataclass(frozen=True)
class Shared:
    """What every worker of a response is checked against, read once for it (not per worker):
    the secrets' names, `.floom/connections.yml`, workspace.yml and the stats' time window."""

    secret_names: Collection[str]
    connections: list[ConnectionEntry]
    meta: agent_setup.Meta
    window: run_stats.Window

    @classmethod
    def read(cls, ws: Workspace) -> Shared:
        try:
            known = connection_files.entries(ws)
        except Conflict:  # a broken connections file: every declared connection is missing
            known = []
        return cls(ws.secret_names(), known, agent_setup.read_meta(ws), run_stats.Window.now())


def status_of(ws: Workspace, entry: WorkerEntry, shared: Shared | None = None
              ) -> tuple[str, str | None, list[str]]:
    """(status, error, missing connections) as people see them: the registry's, except that a
    ready agent worker that cannot run yet (no provider configured, its key secret missing) is
    `needs_setup`, and a ready worker whose declared connections do not all exist is
    `missing_connection`, since it cannot do its job."""
    shared = Shared.read(ws) if shared is None else shared
    m = entry.manifest
    if entry.status == "ready" and m is not None and m.mode == "agent":
        problem = agent_setup.setup_problem(ws, m.model, shared.secret_names, shared.meta)
        if problem is not None:
            return "needs_setup", problem, []
    status, missing = workers.status_of(ws, entry, shared.connections)
    return status, entry.error, missing


def _described(entry_id: str, m: Manifest | None, shape: str) -> dict[str, Any]:
    """The fields of a list item that only its manifest decides."""
    return dict(
        name=m.title if m else entry_id,
        description=m.effective_description if m else None,
        long_description=m.long_description if m and shape != "list" else None,
        version=m.version if m else None,
        visibility=m.visibility if m else "private",
        paused=bool(m and m.paused),
        archived=bool(m and m.archived),
        archive_reason=m.archive_reason if m else None,
        is_example=bool(m and m.is_example),
        system=bool(m and m.system_worker),
        folder=m.folder if m else None,
        tags=list(m.tags) if m else [],
        trigger_type=m.trigger_type if m else None,
        triggers=[trigger_label(t) for t in m.all_triggers] if m else [],
        triggers_spec=trigger_specs(m) if m else [],
        mode=m.mode if m else None,
        runtime=m.exec.runtime if m else None,
        connections=m.connection_slugs if m else [],
        inputs=None if shape == "list" else [plain(f) for f in m.exec.inputs] if m else [],
    )


def _manifest_fields(entry_id: str, m: Manifest | None, shape: str) -> dict[str, Any]:
    """`_described`, kept per manifest and shape (a reload parses a new manifest): a page of
    workers would otherwise derive them all again on every request. Responses only encode them."""
    if m is None:
        return _described(entry_id, m, shape)
    key = (id(m), shape)
    found = _DESCRIBED.get(key)
    if found is None or found[0] is not m:
        if len(_DESCRIBED) > MAX_CACHED:
            _DESCRIBED.clear()
        found = _DESCRIBED[key] = (m, _described(entry_id, m, shape))
    return found[1]


def summary(ws: Workspace, entry: WorkerEntry, viewer: Viewer, shape: str = "full",
            shared: Shared | None = None) -> WorkerSummary:
    shared = Shared.read(ws) if shared is None else shared
    m = entry.manifest
    last = next(iter(runs.store(ws).entries(entry.id)), None)
    names = shared.secret_names
    status, error, missing = status_of(ws, entry, shared)
    return WorkerSummary(
        **_manifest_fields(entry.id, m, shape),
        id=entry.id,
        status=status,
        error=error,
        enabled=status == "ready",
        runner="local",
        starred=entry.id in viewer.starred,
        updated_at=entry.updated_at,
        last_run=run_views.summary(ws, last) if last is not None else None,
        recent_stats=run_stats.recent_stats(ws, entry.id, shared.window),
        missing_secrets=[s for s in m.exec.secrets if s not in names] if m else [],
        missing_connections=missing,
        permissions=permissions(viewer.role),
    )


def list_workers(ws: Workspace, query: workers.ListQuery,
                 viewer: Viewer) -> tuple[list[WorkerSummary], int]:
    shared = Shared.read(ws)
    page, total = workers.list_entries(ws, query, viewer.starred,
                                       lambda entry: status_of(ws, entry, shared)[0])
    return [summary(ws, e, viewer, query.shape, shared) for e in page], total


def _contexts(ws: Workspace, m: Manifest) -> list[WorkerContext]:
    return [WorkerContext(name=name, writeable=writeable, exists=contexts.exists(ws, name),
                          sensitive=contexts.is_sensitive(ws, name))
            for name, writeable in m.context_mounts]


def _text(files: list[FileOut], path: str | None) -> str | None:
    found = next((f for f in files if f.path == path), None)
    return found.content if found is not None and not found.binary else None


def detail(ws: Workspace, worker_id: str, viewer: Viewer,
           new_webhook_secret: str | None = None) -> WorkerDetail:
    """The worker's detail; NotFound("Worker not found")."""
    entry = workers.entry_or_404(ws, worker_id)
    folder = ws.path / paths.worker_dir(entry.id)
    files: list[FileOut] = []
    for rel in entry.files:
        try:
            files.append(file_out(rel, (folder / rel).read_bytes()))
        except OSError:
            continue  # deleted between listing and reading; the next reload drops it
    m = entry.manifest
    base = summary(ws, entry, viewer)
    script = m.entry if m and m.mode == "script" else "run.py"
    has_webhook = bool(m and any(t.type == "webhook" for t in m.all_triggers))
    tip = ws.repo.tip()
    config = plain(m) if m else None
    return WorkerDetail(
        **{f: getattr(base, f) for f in WorkerSummary.__struct_fields__},
        manifest=config,  # this server's name; `config` is the reference's
        config=config,
        manifest_yaml=entry.manifest_text,
        entry=m.entry if m else None,
        command=m.command if m else None,
        declared_secrets=list(m.exec.secrets) if m else [],
        outputs=[plain(f) for f in m.exec.outputs] if m else [],
        example_input=m.example_input if m else None,
        input_values=dict(m.input_values or {}) if m else {},
        contexts=_contexts(ws, m) if m else [],
        recent_runs=[run_views.summary(ws, e) for _, e in
                     zip(range(RECENT_RUNS), runs.store(ws).entries(entry.id), strict=False)],
        stats=run_stats.worker_stats(ws, entry.id),
        run_py_content=_text(files, script),
        skill_md_content=_text(files, "SKILL.md"),
        webhook_url=viewer.webhook_url(entry.id) if has_webhook else None,
        new_webhook_secret=new_webhook_secret,
        files=files,
        sha=str(tip.id)[:7] if tip else None,
    )

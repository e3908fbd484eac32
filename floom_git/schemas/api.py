"""API request and response bodies of workers, contexts, workspace instructions and system
routes. Handlers decode requests into these; OpenAPI is built from them (rules in
schemas/base.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from floom_git.schemas.base import NOT_BLANK, Body, Out, documented
from floom_git.schemas.run import RecentStats, RunSummary, WorkerStats


class Error(Out, kw_only=True):
    detail: str  # what went wrong, for a person
    code: str  # what went wrong, for a program: invalid_input, not_found, authorization_pending...


class FileIn(Body, kw_only=True):
    path: str
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class FileOut(Out, kw_only=True):
    path: str
    size: int
    binary: bool
    content: str | None = None
    encoding: Literal["utf-8", "base64"] | None = None
    content_type: str | None = None


class WorkerCreate(Body, kw_only=True):
    worker_yml: str | None = None
    manifest: dict[str, Any] | None = None
    files: list[FileIn] = []
    run_py: str | None = None
    skill_md: str | None = None


class WorkerFilesPut(Body, kw_only=True):
    files: list[FileIn]


class WorkerVisibility(Body, kw_only=True):
    visibility: Literal["private", "workspace", "shared", "public"]


class TriggerSpec(Out, kw_only=True):
    type: str  # manual | schedule | webhook | composio
    cron: str | None
    timezone: str | None
    webhook: dict[str, Any] | None
    composio: dict[str, Any] | None
    label: str


class Permissions(Out, kw_only=True):
    """What the caller may do with the worker (from their role in the workspace)."""

    is_owner: bool
    can_view: bool
    can_edit: bool
    can_run: bool
    can_delete: bool
    can_share: bool


class WorkerContext(Out, kw_only=True):
    """A context pack the worker declares, and whether the workspace has it."""

    name: str
    writeable: bool
    exists: bool
    sensitive: bool


class WorkerSummary(Out, kw_only=True):
    """A worker in GET /workers (REFERENCE §2.2). With ?shape=list, `inputs` and
    `long_description` are null (a trimmed payload, same fields)."""

    id: str
    name: str
    description: str | None
    long_description: str | None
    version: str | None
    status: str
    error: str | None
    visibility: str
    paused: bool
    archived: bool
    archive_reason: str | None
    enabled: bool
    is_example: bool
    system: bool
    folder: str | None
    tags: list[str]
    trigger_type: str | None
    triggers: list[str]  # human-readable labels, e.g. "schedule: 0 9 * * 1-5 (Europe/Berlin)"
    triggers_spec: list[TriggerSpec]
    mode: str | None
    runtime: str | None
    runner: str
    starred: bool
    updated_at: str | None
    last_run: RunSummary | None
    recent_stats: RecentStats
    connections: list[str]
    missing_secrets: list[str]
    missing_connections: list[str]
    inputs: list[dict[str, Any]] | None
    permissions: Permissions


class WorkerDetail(WorkerSummary, kw_only=True):
    manifest: dict[str, Any] | None
    config: dict[str, Any] | None  # the whole manifest with every default filled in
    manifest_yaml: str
    entry: str | None
    command: str | None
    declared_secrets: list[str]
    outputs: list[dict[str, Any]]
    example_input: dict[str, Any] | None
    input_values: dict[str, Any]  # saved inputs for automated triggers (worker.yml)
    contexts: list[WorkerContext]
    recent_runs: list[RunSummary]
    stats: WorkerStats
    run_py_content: str | None
    skill_md_content: str | None
    webhook_url: str | None  # when the worker has a webhook trigger and a secret
    new_webhook_secret: str | None  # only in the answer that rotated it
    files: list[FileOut]
    sha: str | None


class Version(Out, kw_only=True):
    id: str
    sha: str
    message: str
    author: str
    email: str
    timestamp: str
    asset_type: str
    asset_id: str


class VersionFiles(Out, kw_only=True):
    sha: str
    files: list[FileOut]


class ReloadResult(Out, kw_only=True):
    status: str
    workers_loaded: int
    committed: list[str] = []
    errors: list[str] = []


class Deleted(Out, kw_only=True):
    deleted: bool
    id: str
    sha: str | None


class ContextCreate(Body, kw_only=True):
    description: str | None = None
    visibility: Literal["private", "workspace", "shared", "public"] = "workspace"
    writeable: bool = False
    sensitive: bool = False  # left out of exports (context.yml `sensitive: true`)
    category: str | None = None


class ContextSensitive(Body, kw_only=True):
    sensitive: bool


class ContextVisibility(Body, kw_only=True):
    visibility: Literal["private", "workspace", "shared", "public"]


class ContextFileIn(Body, kw_only=True):
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class ContextSummary(Out, kw_only=True):
    name: str
    description: str | None
    visibility: str
    writeable: bool
    sensitive: bool
    category: str | None = None
    file_count: int
    size_bytes: int


class ContextDetail(ContextSummary, kw_only=True):
    files: list[FileOut]
    metadata: dict[str, Any]


class ContextFileOut(Out, kw_only=True):
    """A context file as JSON (Accept: application/json): text as UTF-8, other bytes as base64."""

    path: str
    content: str
    is_binary: bool
    encoding: Literal["utf-8", "base64"]
    size: int
    content_type: str


class WriteResult(Out, kw_only=True):
    path: str
    sha: str | None
    changed: bool
    size: int | None = None


class UploadResult(Out, kw_only=True):
    uploaded: list[str]
    sha: str | None
    changed: bool


class WorkspaceDoc(Out, kw_only=True):
    content: str
    sha: str | None


class WorkspacePut(Body, kw_only=True):
    content: Annotated[str, documented(NOT_BLANK)]


class ChangelogEntry(Out, kw_only=True):
    asset_type: str
    asset_id: str
    asset_name: str
    sha: str
    message: str
    author: str
    committed_at: str


class Health(Out, kw_only=True):
    status: str


class SystemInfo(Out, kw_only=True):
    version: str
    environment: str  # FLOOM_ENVIRONMENT, e.g. production, staging, development
    runner: str
    git_version: str | None  # `git --version` of the git the server runs; null if it is missing
    python_version: str
    started_at: str
    workspaces: int

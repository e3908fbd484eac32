"""API request and response bodies. Handlers decode requests into these; OpenAPI is built from them."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Out(msgspec.Struct, kw_only=True):
    pass


class Error(Out, kw_only=True):
    detail: str


class FileIn(Strict, kw_only=True):
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


class WorkerCreate(Strict, kw_only=True):
    worker_yml: str | None = None
    manifest: dict[str, Any] | None = None
    files: list[FileIn] = []
    run_py: str | None = None
    skill_md: str | None = None


class WorkerFilesPut(Strict, kw_only=True):
    files: list[FileIn]


class WorkerVisibility(Strict, kw_only=True):
    visibility: Literal["private", "workspace", "shared", "public"]


class WorkerSummary(Out, kw_only=True):
    id: str
    name: str
    description: str | None
    version: str | None
    status: str
    error: str | None = None
    visibility: str
    paused: bool
    archived: bool
    tags: list[str]
    trigger_type: str | None
    mode: str | None
    runtime: str | None
    starred: bool = False
    updated_at: str | None = None
    inputs: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class WorkerDetail(WorkerSummary, kw_only=True):
    manifest: dict[str, Any] | None
    manifest_yaml: str
    entry: str | None
    command: str | None
    declared_secrets: list[str]
    missing_secrets: list[str]
    missing_connections: list[str] = []  # declared connections the workspace lacks
    outputs: list[dict[str, Any]]
    triggers: list[dict[str, Any]]
    example_input: dict[str, Any] | None
    files: list[FileOut]
    sha: str | None = None


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


class ContextCreate(Strict, kw_only=True):
    description: str | None = None
    visibility: Literal["private", "workspace", "shared", "public"] = "workspace"
    writeable: bool = False
    category: str | None = None


class ContextVisibility(Strict, kw_only=True):
    visibility: Literal["private", "workspace", "shared", "public"]


class ContextFileIn(Strict, kw_only=True):
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class ContextSummary(Out, kw_only=True):
    name: str
    description: str | None
    visibility: str
    writeable: bool
    category: str | None = None
    file_count: int
    size_bytes: int


class ContextDetail(ContextSummary, kw_only=True):
    files: list[FileOut]
    metadata: dict[str, Any]


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


class WorkspacePut(Strict, kw_only=True):
    content: str


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
    runner: str
    git_version: str | None = None
    workspaces: int | None = None

"""API bodies for worker share links (public read-only views, import from a share) and for
workspace export/import bundles."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from floom_git.schemas.api import FileOut
from floom_git.schemas.base import Body


class ShareLinkCreate(Body, kw_only=True):
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class ShareLink(msgspec.Struct, kw_only=True):
    token: str
    url: str
    entity_type: str = "worker"
    worker_id: str
    expires_at: str | None = None


class ShareRevoked(msgspec.Struct, kw_only=True):
    revoked: bool
    count: int


class PublicWorker(msgspec.Struct, kw_only=True):
    """The allow-listed public view of a shared worker: no secrets, no workspace internals."""

    id: str
    name: str
    description: str | None
    version: str | None
    mode: str | None
    runtime: str | None
    trigger_type: str | None
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    example_input: dict[str, Any] | None
    manifest_yaml: str
    files: list[FileOut]
    sha: str | None


class ImportFromShare(Body, kw_only=True):
    token: str


class ShareImported(msgspec.Struct, kw_only=True):
    worker_id: str
    source_worker_id: str
    url: str
    sha: str | None


class Skipped(msgspec.Struct, kw_only=True):
    type: str
    id: str
    reason: str


class ImportResult(msgspec.Struct, kw_only=True):
    workers_imported: list[str]
    contexts_imported: list[str]
    issues_imported: list[str]
    skipped: list[Skipped]
    id_remaps: dict[str, str]
    required_secrets: list[str]
    required_connections: list[str]
    workspace_md_present: bool
    sha: str | None

"""Workspace instructions (workspace.md), their versions and rollback, and the workspace
changelog that merges the history of workers, contexts and instructions."""

from __future__ import annotations

import asyncio

from floom_git import paths
from floom_git.errors import InvalidInput, NotFound, PayloadTooLarge
from floom_git.schemas.api import ChangelogEntry, Version, WorkspaceDoc
from floom_git.services import assets
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace
from floom_git.storage import history
from floom_git.storage.repo import Changeset, WorkspaceRepo

ASSET_TYPES = ("worker", "context", "workspace_instructions")


async def current(ws: Workspace) -> WorkspaceDoc:
    """The instructions as on disk, with the short sha of main's tip (None before any commit)."""
    content = await asyncio.to_thread(read, ws)
    tip = ws.repo.tip()
    return WorkspaceDoc(content=content, sha=str(tip.id)[:7] if tip else None)


def read(ws: Workspace) -> str:
    path = ws.path / paths.WORKSPACE_MD
    if not path.is_file():
        return ""
    return path.read_bytes().decode("utf-8", errors="replace")


async def write(ws: Workspace, actor: Actor, content: str, max_bytes: int) -> WorkspaceDoc:
    if not content.strip():
        raise InvalidInput("content: workspace instructions must not be empty")
    data = content.encode("utf-8")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"content: larger than {max_bytes} bytes")
    result = await ws.writer.write(
        lambda repo: Changeset({paths.WORKSPACE_MD: data}, "workspace: update instructions"),
        actor.signature,
    )
    return WorkspaceDoc(content=content, sha=result.short)


def asset() -> assets.Asset:
    """The instructions file as a versioned asset; it always exists (empty when missing)."""
    return assets.Asset(kind="workspace_instructions", id="workspace", path=paths.WORKSPACE_MD,
                        rollback_message="workspace: rollback to {sha}")


async def versions(ws: Workspace, limit: int, offset: int) -> list[Version]:
    return await assets.versions(ws, asset(), limit, offset)


async def version(ws: Workspace, sha: str) -> WorkspaceDoc:
    short, files = await assets.contents(ws, asset(), sha)
    data = (files or {}).get(paths.WORKSPACE_MD)
    if data is None:
        raise NotFound(f"workspace.md did not exist at {sha}")
    return WorkspaceDoc(content=data.decode("utf-8", errors="replace"), sha=short)


async def rollback(ws: Workspace, actor: Actor, sha: str) -> WorkspaceDoc:
    short = await assets.rollback(ws, actor, asset(), sha)
    return WorkspaceDoc(content=await asyncio.to_thread(read, ws), sha=short)


def _assets(repo: WorkspaceRepo, sha: str) -> list[tuple[str, str]]:
    """(asset_type, asset_id) pairs a commit touched, in path order."""
    seen: list[tuple[str, str]] = []
    for p in history.changed_by(repo, sha):
        parts = p.split("/")
        if parts[0] == paths.WORKERS_DIR and len(parts) > 2:
            asset = ("worker", parts[1])
        elif parts[0] == paths.CONTEXTS_DIR and len(parts) > 2:
            asset = ("context", parts[1])
        elif p == paths.WORKSPACE_MD:
            asset = ("workspace_instructions", "workspace")
        else:
            continue
        if asset not in seen:
            seen.append(asset)
    return seen


async def changelog(
    ws: Workspace, limit: int, asset_types: list[str] | None
) -> list[ChangelogEntry]:
    wanted = set(asset_types or ASSET_TYPES)
    unknown = wanted - set(ASSET_TYPES)
    if unknown:
        raise InvalidInput(f"asset_types: unknown type(s) {', '.join(sorted(unknown))}")
    watched = {"worker": paths.WORKERS_DIR, "context": paths.CONTEXTS_DIR,
               "workspace_instructions": paths.WORKSPACE_MD}

    def collect() -> list[ChangelogEntry]:
        entries = ws.logs.log([watched[t] for t in sorted(wanted)], limit=limit)
        out = []
        for e in entries:
            for kind, asset_id in _assets(ws.repo, e.sha):
                if kind in wanted:
                    out.append(ChangelogEntry(asset_type=kind, asset_id=asset_id,
                                              asset_name=asset_id, sha=e.sha[:7], message=e.message,
                                              author=e.author, committed_at=e.timestamp))
        return out[:limit]

    return await asyncio.to_thread(collect)

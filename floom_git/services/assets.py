"""Versioned assets (a worker folder, a context pack, the instructions file): their history and
rollback, with the rules (which shas are versions, when an asset is unknown, what a rollback
commits or refuses) written once; workers, contexts and instructions describe their asset."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from floom_git.errors import InvalidInput, NotFound
from floom_git.schemas.api import Version, VersionFiles
from floom_git.services.actor import Actor
from floom_git.services.files import file_out
from floom_git.services.workspaces import Workspace
from floom_git.storage import history
from floom_git.storage.repo import Changeset, WorkspaceRepo


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Asset:
    """Where an asset lives and what its owner checks. `rollback_message` is the commit subject,
    `{sha}` standing for the short sha restored. `check_id` raises InvalidInput for a malformed
    id (a read answers 404 `unknown` instead). `check` sees the files a rollback would restore
    (folder-relative paths; a file under its own name) and raises to refuse it."""

    kind: str  # Version.asset_type
    id: str  # Version.asset_id
    path: str  # the folder or file in the tree
    rollback_message: str
    unknown: str = "Not found"
    exists: Callable[[], bool] = _always
    check_id: Callable[[str], object] | None = None
    check: Callable[[dict[str, bytes]], object] | None = None


def _known(asset: Asset) -> None:
    """A read of a malformed id is a read of nothing: 404, never a git pathspec."""
    if asset.check_id is not None:
        try:
            asset.check_id(asset.id)
        except InvalidInput:
            raise NotFound(asset.unknown) from None


async def versions(ws: Workspace, asset: Asset, limit: int, offset: int) -> list[Version]:
    """The commits on main that changed the asset, newest first. NotFound when it has no
    history and does not exist (a deleted asset keeps its versions, so it can come back)."""
    _known(asset)

    def collect() -> list[history.LogEntry]:
        entries = ws.logs.log([asset.path], limit=limit, skip=offset)
        if not entries and not asset.exists():
            raise NotFound(asset.unknown)
        return entries

    entries = await asyncio.to_thread(collect)
    return [Version(id=e.sha[:7], sha=e.sha[:7], message=e.message, author=e.author,
                    email=e.email, timestamp=e.timestamp, asset_type=asset.kind, asset_id=asset.id)
            for e in entries]


async def contents(ws: Workspace, asset: Asset, sha: str) -> tuple[str, dict[str, bytes] | None]:
    """(short sha, what the asset held at that version or None if it was deleted there).
    NotFound when `sha` is not one of the asset's versions."""
    _known(asset)

    def read() -> tuple[str, dict[str, bytes] | None]:
        commit = history.version_of(ws.repo, sha, asset.path)
        return str(commit.id)[:7], history.contents(ws.repo, commit, asset.path)

    return await asyncio.to_thread(read)


async def version_files(ws: Workspace, asset: Asset, sha: str) -> VersionFiles:
    short, files = await contents(ws, asset, sha)
    return VersionFiles(sha=short, files=[file_out(p, d) for p, d in sorted((files or {}).items())])


async def rollback(ws: Workspace, actor: Actor, asset: Asset, sha: str) -> str | None:
    """Put the asset back as it was at version `sha` in one commit; returns the new short sha.
    NotFound when `sha` is not one of its versions, Conflict when the asset did not exist there,
    and whatever `check` raises when the restored asset would be invalid: nothing is committed."""
    if asset.check_id is not None:
        asset.check_id(asset.id)

    def build(repo: WorkspaceRepo) -> Changeset:
        commit = history.version_of(repo, sha, asset.path)
        message = asset.rollback_message.replace("{sha}", str(commit.id)[:7])
        change = history.restore(repo, commit, asset.path, message)
        if asset.check is not None:
            asset.check(history.contents(repo, commit, asset.path) or {})
        return change

    result = await ws.writer.write(build, actor.signature)
    return result.short

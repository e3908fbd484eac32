"""Workspaces as tenants: create (a new repository from the template; the creator becomes owner),
rename/describe (a workspace.yml commit), delete (repository, memberships, tokens and secrets),
and the timestamps the identity routes show."""

from __future__ import annotations

import datetime as dt
import re

from floom_git import paths
from floom_git.codec import dump_yaml, load_yaml, set_top_level
from floom_git.errors import Conflict, InvalidInput
from floom_git.schemas.agent import check_workspace_yml
from floom_git.schemas.identity import WorkspaceCreate, WorkspacePatch
from floom_git.services.actor import Actor
from floom_git.services.identity import Identity
from floom_git.services.workspaces import Workspace, WorkspaceManager
from floom_git.storage.repo import Changeset, WorkspaceRepo

DEFAULT = "default"
MAX_NAME = 100
MAX_DESCRIPTION = 500


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _text(value: str | None, field: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > limit or any(ord(c) < 32 for c in value):
        raise InvalidInput(f"{field}: must be 1-{limit} printable characters")
    return value


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:63].rstrip("-_")


def describe(ws: Workspace) -> tuple[str, str | None]:
    """(display name, description) from workspace.yml in the working tree."""
    try:
        meta = load_yaml((ws.path / paths.WORKSPACE_YML).read_bytes(), where=paths.WORKSPACE_YML)
    except (OSError, InvalidInput):
        return ws.id, None
    if not isinstance(meta, dict):
        return ws.id, None
    name, desc = meta.get("name"), meta.get("description")
    return (name if isinstance(name, str) else ws.id), (desc if isinstance(desc, str) else None)


async def create_workspace(manager: WorkspaceManager, identity: Identity, actor: Actor,
                           body: WorkspaceCreate, *, owner_user_id: str | None) -> Workspace:
    """A new workspace repository; `owner_user_id` (a stored user) becomes its owner.

    Raises InvalidInput for a bad id, name or description, Conflict when the id or name is taken.
    """
    name = _text(body.name, "name", MAX_NAME)
    description = _text(body.description, "description", MAX_DESCRIPTION)
    ws_id = body.id if body.id is not None else slug(name or "")
    if not ws_id:
        raise InvalidInput("id: give an id (or a name to derive it from)")
    paths.check_workspace_id(ws_id)
    if manager.exists(ws_id):
        raise Conflict(f"id: workspace {ws_id} already exists")
    if name and any(describe(ws)[0] == name for ws in manager.all()):
        raise Conflict(f"name: a workspace named {name!r} already exists")
    ws = await manager.create(ws_id, actor, {"name": name or ws_id, "description": description})
    if owner_user_id is not None:
        identity.members.add(ws.uid, owner_user_id, "owner", invited_by=owner_user_id)
    return ws


async def update_workspace(manager: WorkspaceManager, ws: Workspace, actor: Actor,
                           patch: WorkspacePatch) -> str | None:
    """Set name and/or description in workspace.yml as one commit; the short sha (None if no
    change)."""
    name = _text(patch.name, "name", MAX_NAME)
    description = _text(patch.description, "description", MAX_DESCRIPTION)
    if name is None and description is None:
        raise InvalidInput("request body: give a name and/or a description")
    if name and any(describe(o)[0] == name for o in manager.all() if o.id != ws.id):
        raise Conflict(f"name: a workspace named {name!r} already exists")

    def build(repo: WorkspaceRepo) -> Changeset | None:
        tip = repo.tip()
        raw = repo.read_blob(tip, paths.WORKSPACE_YML) or b""
        text = raw.decode("utf-8", errors="replace")
        changes = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        try:  # a one-line edit keeps a person's comments and layout
            for key, value in changes.items():
                text = set_top_level(text, key, value)
            data = text.encode()
        except InvalidInput:  # a folded or block value: rewrite the file from its data
            meta = load_yaml(raw, where=paths.WORKSPACE_YML) if raw.strip() else {}
            if not isinstance(meta, dict):
                raise InvalidInput(
                    f"{paths.WORKSPACE_YML}: expected a mapping at the top"
                ) from None
            data = dump_yaml({**meta, **changes})
        if data == raw:
            return None
        check_workspace_yml(data)  # an invalid agent block is never committed through the API
        return Changeset({paths.WORKSPACE_YML: data}, f"workspace: update {' and '.join(changes)}")

    result = await ws.writer.write(build, actor.signature)
    return result.short


async def delete_workspace(manager: WorkspaceManager, ws_id: str) -> None:
    """Remove a workspace and everything the server keeps about it (the manager's `on_delete`
    purgers: runs, share links, webhook secrets, alerts, schedules, secrets, members, tokens);
    `default` stays (Conflict)."""
    if ws_id == DEFAULT:
        raise Conflict("The default workspace cannot be deleted")
    manager.get(ws_id)
    await manager.delete(ws_id)

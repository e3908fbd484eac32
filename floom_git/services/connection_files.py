"""`.floom/connections.yml` on main, read at the tip (parsed once per blob), and the connections
workers declare (`connections:` in worker.yml) with which of them are missing.

A declared entry is an app slug (`github`), `{app: slug, allowed_tools?}`, or
`{mcp: {label, allowed_tools?}}`; an app entry is satisfied by an app connection of that app, an
mcp entry by the connection with that label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgspec

from floom_git.codec import dump_yaml
from floom_git.errors import Conflict, NotFound
from floom_git.schemas.connections import (
    CONNECTIONS_FILE,
    ConnectionEntry,
    ConnectionsFile,
    parse_connections_file,
)
from floom_git.schemas.manifest import Manifest
from floom_git.services.tip_files import TipFile
from floom_git.services.workspaces import Workspace
from floom_git.storage.repo import WorkspaceRepo

NOT_FOUND = "Connection not found"
_FILE = TipFile(CONNECTIONS_FILE, parse_connections_file, ConnectionsFile)
# How often the file was looked up at the tip: a listing reads it once per page, not once per
# worker (tests/http/test_workers.py holds that).
READS: Counter[str] = Counter()


# -- the file -------------------------------------------------------------------------------------
def read(repo: WorkspaceRepo) -> ConnectionsFile:
    """The file at the tip of main; Conflict naming it when it does not validate (a person's
    edit on disk): every connection route says what to fix."""
    READS[CONNECTIONS_FILE] += 1
    return _FILE.read(repo)


def entries(ws: Workspace) -> list[ConnectionEntry]:
    return list(read(ws.repo).connections)


def find(ws: Workspace, conn_id: str) -> ConnectionEntry:
    for c in entries(ws):
        if c.id == conn_id:
            return c
    raise NotFound(NOT_FOUND)


def dump(data: ConnectionsFile) -> bytes:
    return dump_yaml(msgspec.to_builtins(data))


# -- what workers declare -----------------------------------------------------------------------
@dataclass(frozen=True)
class Declared:
    kind: str  # app | mcp
    key: str  # app slug or connection label
    allowed_tools: tuple[str, ...] | None

    @property
    def title(self) -> str:
        return self.key if self.kind == "app" else f"mcp:{self.key}"


def declared(manifest: Manifest) -> list[Declared]:
    """The worker's `connections:` entries this server understands (composio ones are left to
    Composio)."""
    out = []
    for item in manifest.connections:
        if isinstance(item, str):
            out.append(Declared("app", item, None))
        elif isinstance(item, dict) and isinstance(item.get("mcp"), dict):
            spec = item["mcp"]
            tools = spec.get("allowed_tools")
            out.append(Declared("mcp", str(spec.get("label", "")),
                                tuple(map(str, tools)) if isinstance(tools, list) else None))
        elif isinstance(item, dict) and isinstance(item.get("app"), str):
            tools = item.get("allowed_tools")
            out.append(Declared("app", item["app"],
                                tuple(map(str, tools)) if isinstance(tools, list) else None))
    return out


def match(items: list[ConnectionEntry], want: Declared) -> ConnectionEntry | None:
    if want.kind == "mcp":
        return next((c for c in items if c.label == want.key), None)
    apps = [c for c in items if c.kind == "app" and c.app == want.key]
    return next((c for c in apps if c.label == want.key), apps[0] if apps else None)


def missing_connections(ws: Workspace, manifest: Manifest | None,
                        items: list[ConnectionEntry] | None = None) -> list[str]:
    """The declared connections that do not exist (`github`, `mcp:docs`). An unreadable
    connections file counts as no connections."""
    if manifest is None or not manifest.connections:
        return []
    if items is None:
        try:
            items = entries(ws)
        except Conflict:
            items = []
    return [d.title for d in declared(manifest) if match(items, d) is None]

"""The MCP tools registry: workers exposed as tools of the workspace's MCP server, kept in
`workspace-tools.yml` on main (one commit per change), and the JSON schema a worker's declared
inputs give its tool."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from floom_git import paths
from floom_git.codec import dump_yaml
from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.schemas.api import Deleted
from floom_git.schemas.manifest import Field, Manifest
from floom_git.schemas.tools import (
    TOOLS_FILE,
    ToolCreate,
    ToolEntry,
    ToolOut,
    ToolsFile,
    ToolUpdate,
    check_tools_file,
    parse_tools_file,
)
from floom_git.services.actor import Actor
from floom_git.services.tip_files import TipFile
from floom_git.services.workspaces import Workspace
from floom_git.storage.git_types import Tree, entry_names
from floom_git.storage.repo import Changeset, WorkspaceRepo

NOT_FOUND = "MCP tool not found"
_FILE = TipFile(TOOLS_FILE, parse_tools_file, ToolsFile)

_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}


def _field_schema(f: Field) -> dict[str, Any]:
    schema: dict[str, Any]
    if f.kind == "file":
        schema = {"type": "string", "description": "a file path or upload id"}
    elif f.type == "json":
        schema = {}
    else:
        schema = {"type": _TYPES.get(f.type or "string", "string")}
        if f.type == "url":
            schema["format"] = "uri"
    choices = f.enum or f.options
    if choices:
        schema["enum"] = [c.get("value") if isinstance(c, dict) else c for c in choices]
    if f.bounds is not None:
        for ours, theirs in (("minimum", "minimum"), ("maximum", "maximum"),
                             ("min_length", "minLength"), ("max_length", "maxLength")):
            value = getattr(f.bounds, ours)
            if value is not None:
                schema[theirs] = value
    text = f.description or f.label
    if text:
        schema["description"] = text if f.kind != "file" else f"{text} ({schema['description']})"
    if f.default is not None:
        schema["default"] = f.default
    return schema


def input_schema(manifest: Manifest | None) -> dict[str, Any]:
    """The JSON schema of a worker's declared inputs (an object; required ones listed)."""
    if manifest is None:
        return {"type": "object", "properties": {}}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in manifest.exec.inputs},
    }
    required = [f.name for f in manifest.exec.inputs if f.required and f.default is None]
    if required:
        schema["required"] = required
    return schema


def _read(repo: WorkspaceRepo) -> ToolsFile:
    return _FILE.read(repo)


def registered(ws: Workspace) -> list[ToolEntry]:
    """The registered tools (Conflict naming the file when it does not validate)."""
    return list(_read(ws.repo).tools)


def out(ws: Workspace, tool: ToolEntry) -> ToolOut:
    entry = ws.workers.get(tool.worker_id)
    manifest = entry.manifest if entry is not None else None
    description = tool.description or (manifest.effective_description if manifest else None)
    return ToolOut(id=tool.id, name=tool.name, worker_id=tool.worker_id, description=description,
                   input_schema=input_schema(manifest),
                   worker_status=entry.status if entry is not None else "missing")


async def list_tools(ws: Workspace) -> list[ToolOut]:
    """The registered tools (the file is read off the event loop)."""
    return await asyncio.to_thread(lambda: [out(ws, t) for t in registered(ws)])


def get(ws: Workspace, tool_id: str) -> ToolEntry:
    for tool in registered(ws):
        if tool.id == tool_id:
            return tool
    raise NotFound(NOT_FOUND)


def exposing(repo: WorkspaceRepo, worker_id: str) -> list[str]:
    """Names of the tools that run `worker_id` (none when the file does not validate)."""
    try:
        return [t.name for t in _read(repo).tools if t.worker_id == worker_id]
    except Conflict:
        return []


def _worker_ids(repo: WorkspaceRepo) -> set[str]:
    tree = repo.entry(repo.tip(), paths.WORKERS_DIR)
    return set(entry_names(tree)) if isinstance(tree, Tree) else set()


async def _write(ws: Workspace, actor: Actor, change: Any, message: str) -> ToolEntry:
    """Apply `change(current tools) -> (new tools, the tool)` at the tip and commit it, after
    the checks a push runs on the file."""

    def build(repo: WorkspaceRepo) -> Changeset:
        tools, result = change(list(_read(repo).tools))
        data = dump_yaml(msgspec.to_builtins(ToolsFile(tools=tools)))
        problems = check_tools_file(data, _worker_ids(repo))
        if problems:
            raise InvalidInput(problems[0])
        return Changeset({TOOLS_FILE: data}, message, result=result)

    commit = await ws.writer.write(build, actor.signature)
    assert isinstance(commit.result, ToolEntry)
    return commit.result


def _exists(tools: list[ToolEntry], field: str, value: str, but: str | None = None) -> bool:
    return any(getattr(t, field) == value and t.id != but for t in tools)


async def create(ws: Workspace, actor: Actor, body: ToolCreate) -> ToolOut:
    tool = ToolEntry(id=body.id or body.name, name=body.name, worker_id=body.worker_id,
                     description=body.description)

    def change(tools: list[ToolEntry]) -> tuple[list[ToolEntry], ToolEntry]:
        for key in ("id", "name"):
            if _exists(tools, key, getattr(tool, key)):
                raise Conflict(f"An MCP tool with the {key} {getattr(tool, key)} already exists")
        return [*tools, tool], tool

    return out(
        ws, await _write(ws, actor, change, f"mcp-tools: add {tool.name} ({tool.worker_id})")
    )


async def update(ws: Workspace, actor: Actor, tool_id: str, body: ToolUpdate) -> ToolOut:
    get(ws, tool_id)

    def change(tools: list[ToolEntry]) -> tuple[list[ToolEntry], ToolEntry]:
        current = next((t for t in tools if t.id == tool_id), None)
        if current is None:
            raise NotFound(NOT_FOUND)
        new = msgspec.structs.replace(
            current, **{k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
        )
        if _exists(tools, "name", new.name, but=tool_id):
            raise Conflict(f"An MCP tool named {new.name} already exists")
        return [new if t.id == tool_id else t for t in tools], new

    return out(ws, await _write(ws, actor, change, f"mcp-tools: update {tool_id}"))


async def delete(ws: Workspace, actor: Actor, tool_id: str) -> Deleted:
    get(ws, tool_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        tools = list(_read(repo).tools)
        kept = [t for t in tools if t.id != tool_id]
        if len(kept) == len(tools):
            raise NotFound(NOT_FOUND)
        return Changeset({TOOLS_FILE: dump_yaml(msgspec.to_builtins(ToolsFile(tools=kept)))},
                         f"mcp-tools: remove {tool_id}")

    result = await ws.writer.write(build, actor.signature)
    return Deleted(deleted=True, id=tool_id, sha=result.short)

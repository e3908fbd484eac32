"""The MCP tools registry file `workspace-tools.yml` (workers exposed as MCP tools), its API
bodies, and the checks an API write and a push both run on it.

    version: 1
    tools:
      - {id: summarize, name: summarize, worker_id: summarizer, description: Summarize a text}
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any, Literal

import msgspec

from floom_git.codec import load_yaml
from floom_git.errors import InvalidInput
from floom_git.paths import TOOLS_FILE as TOOLS_FILE  # its home is paths
from floom_git.schemas.base import Body, Out
from floom_git.schemas.manifest import Slug
from floom_git.schemas.patterns import explain, matching

ToolName = Annotated[str, matching(
    r"^[A-Za-z0-9_-]{1,64}$",
    "a tool name of 1 to 64 letters, digits, dashes and underscores")]
ToolDescription = Annotated[str, msgspec.Meta(max_length=1000)]
# The workspace MCP server's own tools; a registered tool may not shadow one of them.
BUILTIN_TOOL_NAMES = frozenset({
    "list_workers", "get_worker", "save_worker", "run_worker", "list_runs", "get_run",
    "get_run_logs", "list_approvals", "resolve_approval", "list_contexts", "read_context",
    "list_issues", "create_issue", "comment_issue", "close_issue",
})
# The name an API body gives a tool: parse_tools_file refuses a built-in's, the spec says so.
NewToolName = Annotated[ToolName, msgspec.Meta(
    extra_json_schema={"not": {"enum": sorted(BUILTIN_TOOL_NAMES)}})]


class ToolEntry(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    id: ToolName
    name: ToolName
    worker_id: Slug
    description: ToolDescription | None = None


class ToolsFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Literal[1] = 1
    tools: list[ToolEntry] = []


class ToolCreate(Body, kw_only=True):
    name: NewToolName
    worker_id: Slug
    description: ToolDescription | None = None
    id: ToolName | None = None  # default: the name


class ToolUpdate(Body, kw_only=True):
    """Fields to change; those left out keep their value."""

    name: NewToolName | None = None
    worker_id: Slug | None = None
    description: ToolDescription | None = None


class ToolOut(Out, kw_only=True):
    id: str
    name: str
    worker_id: str
    description: str | None
    input_schema: dict[str, Any]
    worker_status: str  # the worker's status, or "missing" when it does not exist


def parse_tools_file(data: bytes, where: str = TOOLS_FILE) -> ToolsFile:
    """Parse and check the file on its own (schema, unique ids and names, no built-in names).
    Raises InvalidInput starting with `where`; an empty file is an empty registry."""
    raw = load_yaml(data, where=where)
    if raw is None:
        return ToolsFile()
    try:
        parsed = msgspec.convert(raw, ToolsFile)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {explain(exc)}") from None
    ids: set[str] = set()
    names: set[str] = set()
    for i, tool in enumerate(parsed.tools):
        at = f"`$.tools[{i}]`"
        if tool.id in ids:
            raise InvalidInput(f"{where}: duplicate tool id '{tool.id}' - at {at}")
        if tool.name in names:
            raise InvalidInput(f"{where}: duplicate tool name '{tool.name}' - at {at}")
        if tool.name in BUILTIN_TOOL_NAMES:
            raise InvalidInput(f"{where}: '{tool.name}' is the name of a built-in tool - at {at}")
        ids.add(tool.id)
        names.add(tool.name)
    return parsed


def check_tools_file(data: bytes, worker_ids: Collection[str],
                     where: str = TOOLS_FILE) -> list[str]:
    """Every problem of the file as a workspace holds it: its own checks, then each tool's worker
    must exist among `worker_ids`. [] means valid (the push validator's form)."""
    try:
        parsed = parse_tools_file(data, where)
    except InvalidInput as exc:
        return [exc.message]
    return [f"{where}: tool '{t.name}' names worker '{t.worker_id}', which does not exist "
            f"- at `$.tools[{i}].worker_id`"
            for i, t in enumerate(parsed.tools) if t.worker_id not in worker_ids]

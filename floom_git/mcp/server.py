"""The workspace as an MCP server, on the official SDK's low-level Server. tools/list gives the
built-in tools and the workers registered in workspace-tools.yml (their declared inputs as the
input schema); tools/call checks the caller's role for the REST route the tool mirrors, runs it,
and answers with the result as structured content plus JSON text. A service's refusal comes back
as an error result with the REST detail and the domain error's code (e.g. `forbidden`).

Who calls is bound per request by the transport: `binding_of(ctx)` turns the request context into
the workspace and the authenticated caller (over HTTP, the auth middleware's identity, put in the
ASGI scope's state by the endpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import msgspec
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from floom_git import __version__
from floom_git.config import Settings
from floom_git.errors import Conflict, FloomError, InvalidInput
from floom_git.mcp.tools import BUILTIN, MAX_WAIT, Call, run_and_wait
from floom_git.schemas.patterns import explain
from floom_git.schemas.tools import ToolEntry
from floom_git.services import mcp_tools
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.mcp")
BY_NAME = {t.name: t for t in BUILTIN}
WAIT_MARGIN = 60.0  # a registered tool waits this much longer than its worker's own timeout
INSTRUCTIONS = ("Tools of a floom-git workspace: workers (scripts and AI agents kept in git), "
                "their runs, approvals, context packs and issues. run_worker starts a run and "
                "waits for its result; registered workers are tools of their own.")


@dataclass(frozen=True)
class Binding:
    ws: Workspace
    authorize: Callable[[str], Actor]  # route permission (read | write) -> the caller with its role
    settings: Settings
    attach: Callable[[Workspace], Awaitable[object]]


BindingOf = Callable[[ServerRequestContext[Any, Any]], Binding]


def _schema(args: type[msgspec.Struct]) -> dict[str, Any]:
    """An object schema without a top-level `$ref` (other definitions stay under `$defs`)."""
    schema = msgspec.json.schema(args)
    defs = dict(schema.pop("$defs", {}))
    root = dict(defs.pop(args.__name__, schema))
    root.pop("title", None)
    if defs:
        root["$defs"] = defs
    return root


BUILTIN_TOOLS = [types.Tool(name=t.name, description=t.description, input_schema=_schema(t.args))
                 for t in BUILTIN]


def _registered(ws: Workspace) -> list[ToolEntry]:
    try:
        return mcp_tools.registered(ws)
    except Conflict as exc:  # an invalid workspace-tools.yml hides only the registered tools
        log.warning("workspace %s: %s", ws.id, exc.message)
        return []


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _ok(value: Any) -> types.CallToolResult:
    data = msgspec.to_builtins(value)
    structured = data if isinstance(data, dict) else {"result": data}
    return types.CallToolResult(content=[types.TextContent(type="text", text=_text(data))],
                                structured_content=structured)


def _error(message: str, **extra: Any) -> types.CallToolResult:
    body = {"detail": message, **extra}
    return types.CallToolResult(content=[types.TextContent(type="text", text=_text(body))],
                                is_error=True)


def _refused(exc: FloomError) -> types.CallToolResult:
    """A service's refusal: its message and its code (forbidden, not_found, invalid_input...)."""
    return _error(exc.message, code=exc.code)


def build_server(binding_of: BindingOf) -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        binding = binding_of(ctx)
        tools = list(BUILTIN_TOOLS)
        for entry in _registered(binding.ws):
            out = mcp_tools.out(binding.ws, entry)
            if out.worker_status == "missing":
                continue  # deleted on disk meanwhile; GET /mcp-tools shows it as missing
            tools.append(types.Tool(name=out.name, description=out.description or out.name,
                                    input_schema=out.input_schema))
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        binding = binding_of(ctx)
        arguments = params.arguments or {}

        async def progress(done: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(done, total, message)

        builtin = BY_NAME.get(params.name)
        registered = None if builtin else next(
            (t for t in _registered(binding.ws) if t.name == params.name), None)
        if builtin is None and registered is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        try:
            actor = binding.authorize(builtin.perm if builtin else "write")
            call = Call(binding.ws, actor, binding.settings, binding.attach, progress)
            if builtin is not None:
                try:
                    args = msgspec.convert(arguments, builtin.args, strict=False)
                except msgspec.ValidationError as exc:
                    raise InvalidInput(f"arguments: {explain(exc)}") from None
                return _ok(await builtin.fn(call, args))
            assert registered is not None
            return await _run_registered(call, registered, arguments)
        except FloomError as exc:
            return _refused(exc)

    return Server("floom-git", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def _run_registered(
    call: Call, tool: ToolEntry, arguments: dict[str, Any]
) -> types.CallToolResult:
    """A registered worker as a tool: its run's outputs are the result."""
    entry = call.ws.workers.get(tool.worker_id)
    limit = entry.manifest.limits.timeout_seconds if entry and entry.manifest else 300
    result = await run_and_wait(call, tool.worker_id, arguments,
                                timeout=min(MAX_WAIT, limit + WAIT_MARGIN))
    if result["status"] == "completed":
        return _ok(result.get("outputs") or {})
    if result["status"] in ("failed", "cancelled"):
        return _error(result.get("error") or f"the run {result['status']}", run_id=result["run_id"],
                      error_code=result.get("error_code"))
    return _ok(result)  # waiting for approval, or still running after the wait

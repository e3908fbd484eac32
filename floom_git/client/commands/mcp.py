"""`floom-git mcp --workspace W`: the workspace's MCP server over stdio, for desktop clients that
launch a command. It relays every request to the server's /mcp endpoint with the token from the
environment (FLOOM_TOKEN, else the one `floom-git login` stored), so stdio and HTTP serve the very
same tools under the very same role checks, and only the server ever writes the workspace.
Progress notifications are relayed too. Nothing but MCP messages goes to stdout."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import httpx2

from floom_git import __version__
from floom_git.client.commands import Ctx, command
from floom_git.client.errors import OK, ClientError

if TYPE_CHECKING:  # the SDK takes most of a second to import: only this command needs it
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel.server import Server

WORKSPACE_HEADER = "x-workeros-workspace"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command(sub, "mcp", serve_stdio, "serve the workspace's MCP tools over stdio (for Claude "
            "Desktop and other MCP clients); authenticates with FLOOM_TOKEN")


def relay(upstream: ClientSession, instructions: str | None) -> Server[Any]:
    """A stdio-side server whose tools are the upstream session's."""
    from mcp.server.lowlevel.server import Server

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return await upstream.list_tools(params=params)

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        async def progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        return await upstream.call_tool(params.name, params.arguments, progress_callback=progress)

    return Server("floom-git", version=__version__, instructions=instructions,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(ctx: Ctx, args: argparse.Namespace) -> int:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.stdio import stdio_server

    target = ctx.target
    if not target.token:
        raise ClientError("no token: set FLOOM_TOKEN (an API token of the server) or run "
                          "`floom-git login` first")
    headers = {"x-floom-token": target.token}
    if target.workspace:
        headers[WORKSPACE_HEADER] = target.workspace
    statuses: list[int] = []

    async def on_response(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            statuses.append(response.status_code)

    opened = False
    try:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=3600.0),
                               event_hooks={"response": [on_response]}) as http,
            streamable_http_client(f"{target.server}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as upstream,
        ):
            init = await upstream.initialize()
            opened = True
            server = relay(upstream, init.instructions)
            async with stdio_server() as (stdin, stdout):
                await server.run(stdin, stdout, server.create_initialization_options())
    except Exception as exc:
        if opened:
            raise
        # Unreachable server, refused token: one line. The SDK's task group cancels this task
        # when its connection fails, so the error is only seen once the blocks are left.
        why = f"HTTP {statuses[-1]}" if statuses else _innermost(exc)
        hint = (
            " (check FLOOM_TOKEN and the workspace)"
            if statuses and statuses[-1] in (401, 403)
            else ""
        )
        raise ClientError(
            f"cannot open the MCP session at {target.server}/mcp: {why}{hint}"
        ) from None
    return OK


def _innermost(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__

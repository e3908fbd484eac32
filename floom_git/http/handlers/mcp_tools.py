"""MCP tools registry routes: workers exposed as tools of the workspace MCP server, kept in
workspace-tools.yml (one commit per change)."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.schemas.tools import ToolCreate, ToolUpdate
from floom_git.services import mcp_tools


async def list_tools(request: web.Request) -> web.Response:
    items = await mcp_tools.list_tools(workspace(request))
    return wire.json(items, headers={"X-Total-Count": str(len(items))})


async def create_tool(request: web.Request) -> web.Response:
    body = await wire.decode(request, ToolCreate, settings(request).max_json_bytes)
    return wire.json(await mcp_tools.create(workspace(request), actor(request), body), 201)


async def update_tool(request: web.Request) -> web.Response:
    body = await wire.decode(request, ToolUpdate, settings(request).max_json_bytes)
    return wire.json(await mcp_tools.update(workspace(request), actor(request),
                                            request.match_info["id"], body))


async def delete_tool(request: web.Request) -> web.Response:
    return wire.json(await mcp_tools.delete(workspace(request), actor(request),
                                            request.match_info["id"]))

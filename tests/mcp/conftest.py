"""The SDK's own client against the workspace MCP server of a real server on a port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from aiohttp.test_utils import TestClient
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


@contextlib.asynccontextmanager
async def mcp_session(client: TestClient, headers: dict[str, str],
                      path: str = "/mcp") -> AsyncIterator[ClientSession]:
    """An initialized MCP session with the server behind `client`, sending `headers`."""
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(str(client.make_url(path)), http_client=http) as (
            read,
            write,
        ):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def payload(result: types.CallToolResult) -> Any:
    """The JSON a tool answered with (structured content, else its text)."""
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)

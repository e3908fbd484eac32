"""Route-table entries: the MCP endpoint and tools, connections and the integrations catalog,
Composio events, and the workspace chat."""

from __future__ import annotations

from typing import Any

from floom_git.http import mcp_endpoint
from floom_git.http.handlers import chat, composio, connections, mcp_tools
from floom_git.http.handlers.connections import MAX_PAGE, SIGN_IN
from floom_git.http.mcp_endpoint import SseEvent
from floom_git.http.route import OFFSET, Route, limit
from floom_git.schemas import connections as s
from floom_git.schemas.api import Deleted
from floom_git.schemas.conversation import (
    CONVERSATION_ID,
    ChatRequest,
    ConversationDetail,
    ConversationOut,
)
from floom_git.schemas.integrations import CatalogPage, CatalogTool, ComposioAccepted
from floom_git.schemas.tools import ToolCreate, ToolOut, ToolUpdate


def mcp_endpoint_routes() -> list[Route]:
    # What the SDK reads: an integer or string id makes a request; without one (or with any
    # other value) the message is a notification, answered 202; params may be null.
    jsonrpc = {"type": "object", "description": "a JSON-RPC 2.0 request or notification",
               "properties": {"jsonrpc": {"type": "string", "enum": ["2.0"]},
                              "method": {"type": "string"},
                              "id": {"description": "an integer or a string (a request); "
                                                    "absent or anything else: a notification"},
                              "params": {"type": "object", "nullable": True}},
               "required": ["jsonrpc", "method"]}
    rpc_error = {"type": "object", "required": ["jsonrpc", "error"], "properties": {
        "jsonrpc": {"type": "string"}, "id": {},
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}}}
    # Refusals of the auth middleware are {"detail"}; the SDK's are JSON-RPC errors or text.
    extra = {"body_schema": jsonrpc, "also": {"text/event-stream": SseEvent},
             "also_statuses": (202,), "errors": (405, 406, 415, 421),
             "error_schema": {"anyOf": [{"$ref": "#/components/schemas/Error"}, rpc_error]},
             "error_types": ("text/plain",)}
    summary = ("The workspace as an MCP server (streamable HTTP, stateless): POST JSON-RPC with "
               "Accept: application/json, text/event-stream")
    return [
        Route("POST", "/mcp", mcp_endpoint.serve, "read", summary, "mcp", response=dict[str, Any],
              extra=extra),
        Route("POST", "/mcp-tools/serve", mcp_endpoint.serve_alias, "read",
              summary + " (same as /mcp)", "mcp",
              response=dict[str, Any], extra=extra),
    ]


def mcp_tools_routes() -> list[Route]:
    t = "mcp"
    worker = {"validates": "worker_id must name a worker of the workspace"}
    return [
        Route("GET", "/mcp-tools", mcp_tools.list_tools, "read",
              "Workers exposed as MCP tools (workspace-tools.yml)", t, response=list[ToolOut]),
        Route("POST", "/mcp-tools", mcp_tools.create_tool, "write",
              "Expose a worker as an MCP tool", t,
              body=ToolCreate, response=ToolOut, status=201, extra=worker),
        Route("PUT", "/mcp-tools/{id}", mcp_tools.update_tool, "write",
              "Change a tool's name, worker or description", t, body=ToolUpdate, response=ToolOut,
              extra=worker),
        Route("DELETE", "/mcp-tools/{id}", mcp_tools.delete_tool, "write", "Remove a tool", t,
              response=Deleted),
    ]


def connections_routes() -> list[Route]:
    c, i = "connections", "integrations"
    return [
        Route("GET", "/connections", connections.list_connections, "read",
              "List connections (X-Total-Count)", c,
              response=list[s.ConnectionOut]),
        Route("POST", "/connections", connections.create_app_connection, "write",
              "Connect an app of the catalog: OAuth apps return an authorization URL (pending "
              "until the sign-in finishes)", c, body=s.AppConnectionCreate, response=s.OAuthStarted,
              status=201),
        Route("POST", "/connections/mcp", connections.create_mcp, "admin",
              "Register a remote MCP server (streamable HTTP; auth names a workspace secret)", c,
              body=s.McpConnectionCreate, response=s.ConnectionOut, status=201,
              extra={"validates": "url must name a public host (no loopback, private or "
                                  "link-local address) unless "
                                  "WORKEROS_ALLOW_PRIVATE_MCP_URLS is set"}),
        Route("GET", "/connections/callback", connections.oauth_callback, "public",
              "Where the OAuth provider redirects after the sign-in (stores the tokens)", c,
              response=s.OAuthDone, extra={"rate": "auth", "validates": SIGN_IN},
              query=(("state", "string", "the sign-in's state", {"minLength": 1}, True),
                     ("code", "string", "authorization code"),
                     ("error", "string", "the provider's refusal"),
                     ("error_description", "string", "its explanation"))),
        Route("GET", "/connections/secrets", connections.connection_secrets, "read",
              "Secret metadata: which secrets connections use (never values)", c,
              response=list[s.ConnectionSecret]),
        Route("GET", "/connections/{id}", connections.get_connection, "read", "Connection detail",
              c,
              response=s.ConnectionOut),
        Route("GET", "/connections/{id}/status", connections.connection_status, "read",
              "Status (pending -> active), token expiry and the last test", c,
              response=s.ConnectionStatus),
        Route("POST", "/connections/{id}/test", connections.test_connection, "write",
              "Live initialize + tools/list against the server, with latency", c,
              response=s.ConnectionTest),
        Route("GET", "/connections/{id}/tools", connections.connection_tools, "read",
              "The tools the server lists now (502 when it cannot be reached)", c,
              response=list[s.RemoteTool], extra={"errors": (502,)}),
        Route("GET", "/connections/{id}/activity", connections.connection_activity, "read",
              "Recent runs and tool calls that used the connection", c,
              response=s.ConnectionActivity, query=(limit("at most 200 (default 50)"),)),
        Route("DELETE", "/connections/{id}", connections.delete_connection, "admin",
              "Remove a connection and its stored tokens", c, response=Deleted),
        Route("GET", "/integrations/catalog", connections.catalog, "read",
              "Browse the integrations catalog", i, response=CatalogPage,
              query=(("page", "integer", "1-based page (default 1)",
                      {"minimum": 1, "maximum": MAX_PAGE}),
                     limit("page size (default 50, at most 200)"),
                     ("search", "string", "substring of slug, name or description"),
                     ("category", "string", "only this category"))),
        Route("GET", "/integrations/catalog/{slug}/tools", connections.catalog_tools, "read",
              "An app's tools", i, response=list[CatalogTool]),
    ]


def composio_routes() -> list[Route]:
    return [
        Route("POST", "/composio-events", composio.composio_events, "public",
              "Signed Composio trigger events (Standard Webhooks headers webhook-id, "
              "webhook-timestamp, webhook-signature); starts matching workers", "webhooks",
              response=ComposioAccepted, extra={"errors": (401, 503)},
              query=(("workspace", "string", "workspace id (default: default)"),)),
    ]


def chat_routes() -> list[Route]:
    tag = "chat"
    return [
        Route("POST", "/chat", chat.chat, "read",
              "Ask the workspace agent (SSE: conversation, text_delta, tool_call_start, tool_call, "
              "message, done); 409 until workspace.yml configures a provider", tag,
              body=ChatRequest, content_type="text/event-stream",
              extra={"validates": "conversation_id must name one of your conversations"}),
        Route("GET", "/conversations", chat.list_conversations, "read",
              "Your conversations with the workspace agent, newest first (admins: ?all=1 for "
              "everyone's)", tag, response=list[ConversationOut], extra={"total_count": True},
              query=(limit("page size (default 50, at most 500)"), OFFSET,
                     ("all", "boolean", "every member's conversations (admins only)"))),
        Route("GET", "/conversations/{id}", chat.get_conversation, "read",
              "A conversation with its messages and their tool calls", tag,
              response=ConversationDetail, extra={"params": {"id": {"pattern": CONVERSATION_ID}}}),
    ]

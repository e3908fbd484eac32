"""A worker's connections as agent tools. Each tool of each connection the worker declares
(filtered by the worker's and the connection's `allowed_tools`) becomes an agent `Tool` named
`<label>__<tool>` that calls the remote tool and carries the connection id (copied by the loop
into the run's `tool_calls`). `ConnectionToolset` keeps one session per connection open for the
length of a run, records every call (the connection's activity), and scrubs the credentials it
sent from what comes back, so a server echoing its token never hands it to the model.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from floom_git.agents.tools import Tool, ToolError
from floom_git.errors import Conflict
from floom_git.schemas.connections import ConnectionEntry
from floom_git.schemas.manifest import Manifest
from floom_git.services.connection_files import Declared, declared, entries, match
from floom_git.services.connections import Connections
from floom_git.services.remote_mcp import RemoteError, RemoteSession
from floom_git.services.tenancy import iso
from floom_git.services.workspaces import Workspace

if TYPE_CHECKING:
    import mcp_types as types

MAX_NAME = 64


@dataclass(frozen=True)
class ConnectionTool(Tool):
    """`name` is unique among a run's tools (<label>__<remote tool>), `parameters` the remote
    tool's input JSON schema."""

    remote_name: str = ""


class MissingConnections(Conflict):
    """The worker declares connections the workspace does not have (run error code
    `missing_connection`)."""

    error_code = "missing_connection"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Missing connections: {', '.join(missing)}; add them with POST "
                         "/connections or /connections/mcp")
        self.missing = missing


class ConnectionFailed(Conflict):
    """A declared connection exists but could not be opened (run error code `connection_failed`)."""

    error_code = "connection_failed"


class ToolCallFailed(ToolError):
    """The remote tool answered with an error (`tool_error`), did not answer within
    FLOOM_MCP_CALL_TIMEOUT_SECONDS (`tool_timeout`), or the session with its server failed
    (`connection_error`). The model gets the message as an error result; the run goes on."""

    def __init__(self, message: str, code: str = "tool_error") -> None:
        super().__init__(message)
        self.code = code


def tool_name(label: str, remote: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{label}__{remote}")
    return clean[:MAX_NAME]


def result_value(result: types.CallToolResult) -> Any:
    """What a call returns to the model: the structured result, else the text parts joined,
    else the content parts as JSON. ToolCallFailed when the tool reported an error."""
    from mcp_types import TextContent  # imported with the session that produced `result`

    texts = [c.text for c in result.content if isinstance(c, TextContent)]
    if result.is_error:
        raise ToolCallFailed("\n".join(texts) or "the tool reported an error")
    if result.structured_content is not None:
        return result.structured_content
    if texts and len(texts) == len(result.content):
        return "\n".join(texts)
    return {"content": [c.model_dump(mode="json", exclude_none=True) for c in result.content]}


def _allowed(entry: ConnectionEntry, want: Declared, name: str) -> bool:
    for allowed in (entry.allowed_tools, want.allowed_tools):
        if allowed is not None and name not in allowed:
            return False
    return True


Scrub = Callable[[Any], Any]  # a JSON-like value with the credentials sent replaced


def _keep(value: Any) -> Any:
    return value


class ConnectionToolset:
    """`async with ConnectionToolset(service, ws, manifest, run_id=...) as tools:` opens the
    worker's connections and yields their tools; MissingConnections / ConnectionFailed when a
    declared connection does not exist or cannot be opened. `scrubber(sent)` (e.g. the runtime's
    Redactor) gives what removes the credentials sent (`sent`: name -> value) from results and
    errors before the model, the run or the connection's activity sees them."""

    def __init__(self, service: Connections, ws: Workspace, manifest: Manifest, *,
                 run_id: str | None = None, call_timeout: float | None = None,
                 scrubber: Callable[[dict[str, str]], Scrub] | None = None) -> None:
        self.service = service
        self.ws = ws
        self.manifest = manifest
        self.run_id = run_id
        self.call_timeout = call_timeout or service.settings.mcp_call_timeout_seconds
        self.sent: dict[str, str] = {}  # every credential sent to a server, by a name for people
        self._scrubber = scrubber
        self._scrub: Scrub = _keep
        self._sessions: list[RemoteSession] = []

    async def __aenter__(self) -> list[ConnectionTool]:
        wanted = declared(self.manifest)
        try:
            items = entries(self.ws)
        except Conflict as exc:  # .floom/connections.yml does not validate
            raise ConnectionFailed(exc.message) from None
        pairs = [(want, match(items, want)) for want in wanted]
        missing = [want.title for want, entry in pairs if entry is None]
        if missing:
            raise MissingConnections(missing)
        tools: list[ConnectionTool] = []
        try:
            for want, entry in pairs:
                assert entry is not None
                tools += await self._open(want, entry, {t.name for t in tools})
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return tools

    async def _open(
        self, want: Declared, entry: ConnectionEntry, taken: set[str]
    ) -> list[ConnectionTool]:
        try:
            endpoint = await self.service.endpoint(self.ws, entry)
            self._learn(entry, endpoint.headers)
            remote = RemoteSession(endpoint)
            self._sessions.append(remote)
            await remote.start()
        except (Conflict, RemoteError) as exc:
            message = self._scrub(str(getattr(exc, "message", exc)))
            raise ConnectionFailed(f"Connection {entry.label}: {message}") from None
        out = []
        for tool in remote.tools:
            if not _allowed(entry, want, tool.name):
                continue
            name = tool_name(entry.label, tool.name)
            while name in taken:
                name = name[:MAX_NAME - 2] + f"_{len(taken) % 10}"
            taken.add(name)
            out.append(ConnectionTool(
                name=name, description=f"[{entry.label}] {tool.description or tool.name}",
                parameters=dict(tool.input_schema), fn=self._caller(remote, entry, tool.name),
                connection_id=entry.id, remote_name=tool.name))
        return out

    def _learn(self, entry: ConnectionEntry, headers: dict[str, str]) -> None:
        """Remember the credentials about to be sent (also a bearer token on its own)."""
        auth = self.service.auth_of(entry)
        name = auth.secret if auth is not None else f"connection {entry.label}"
        for header, value in headers.items():
            key = name if name not in self.sent else f"{name} ({header})"
            self.sent[key] = value.removeprefix("Bearer ")
        if self._scrubber is not None:
            self._scrub = self._scrubber(dict(self.sent))

    def _caller(self, remote: RemoteSession, entry: ConnectionEntry,
                remote_name: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def call(arguments: dict[str, Any]) -> Any:
            began = time.monotonic()
            error: str | None = "cancelled"  # unless the call ends otherwise
            try:
                value = self._scrub(result_value(
                    await remote.call(remote_name, arguments, self.call_timeout)))
                error = None
                return value
            except RemoteError as exc:
                error = self._scrub(exc.message)
                if exc.timed_out:
                    raise ToolCallFailed(f"{remote_name} timed out after {self.call_timeout:g}s "
                                         f"({error})", "tool_timeout") from None
                raise ToolCallFailed(error, "connection_error") from None
            except ToolCallFailed as exc:
                error = self._scrub(str(exc))
                raise ToolCallFailed(error) from None
            finally:
                await asyncio.to_thread(self.service.vault.record_call, self.ws.uid, entry.id, {
                    "run_id": self.run_id, "worker_id": self.manifest.name, "tool": remote_name,
                    "ok": error is None, "at": iso(time.time()),
                    "duration_ms": int((time.monotonic() - began) * 1000),
                    "error": error[:300] if error else None})

        return call

    async def __aexit__(self, *exc: object) -> None:
        sessions, self._sessions = self._sessions, []
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

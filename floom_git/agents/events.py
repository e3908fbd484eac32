"""What the agent loop reports while it runs, one event at a time, to the caller's sink (run logs,
SSE, chat stream). Events encode to JSON objects whose `type` names the event; `ToolCallRecord`
is also the entry of a run record's `tool_calls`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from floom_git.agents.messages import ToolCall, Usage


class Event(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class TurnStarted(Event, tag="turn_start", kw_only=True):
    turn: int  # 1-based number of the model call in this run


class TextDeltaEvent(Event, tag="text_delta", kw_only=True):
    turn: int
    text: str


class ModelTurn(Event, tag="model_turn", kw_only=True):
    """A finished model call: its text, the tool calls it asked for, its own token usage and
    the run's totals so far."""

    turn: int
    text: str
    tool_calls: list[ToolCall]
    stop_reason: str | None
    usage: Usage
    total_usage: Usage
    duration_ms: int


class ToolCallStarted(Event, tag="tool_call_start", kw_only=True):
    turn: int
    id: str
    name: str
    arguments: Any  # the decoded object, or the raw text when it was malformed
    connection_id: str | None = None  # as in ToolCallRecord


class ToolCallRecord(Event, tag="tool_call", kw_only=True):
    """A finished tool call. `error_code` is malformed_tool_call, unknown_tool, tool_error (or
    a tool's own code, e.g. tool_timeout) or skipped when the call failed; `result` is
    `{"status": "pending_approval"}` while a request_approval call waits for its decision.
    `connection_id` names the connection whose remote tool was called."""

    turn: int
    id: str
    name: str
    arguments: Any
    result: Any = None
    error: str | None = None
    error_code: str | None = None
    duration_ms: int = 0
    connection_id: str | None = None


class ProviderRetry(Event, tag="provider_retry", kw_only=True):
    turn: int
    attempt: int
    delay_s: float
    status: int | None
    message: str


class AgentLog(Event, tag="log", kw_only=True):
    level: str
    message: str


class AgentEnd(Event, tag="agent_end", kw_only=True):
    status: str  # completed | failed | pending_approval
    error_code: str | None = None
    error: str | None = None
    usage: Usage
    cost_usd: float | None = None


AnyEvent = (TurnStarted | TextDeltaEvent | ModelTurn | ToolCallStarted | ToolCallRecord
            | ProviderRetry | AgentLog | AgentEnd)
Sink = Callable[[Event], Awaitable[None]]


async def discard(event: Event) -> None:
    """A sink that keeps nothing."""

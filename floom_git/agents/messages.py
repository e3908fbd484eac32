"""The provider-neutral conversation: messages, tool calls, token usage, one model request, and
what a provider streams back. Every struct encodes to plain JSON, so a transcript can be stored."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens)


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    name: str
    arguments: str  # the JSON text exactly as the model sent it (it may be malformed)


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`user` and `assistant` carry text; an assistant turn may also carry tool calls; a `tool`
    message answers one call (`tool_call_id`), `is_error` when the call failed."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None
    is_error: bool = False


class ToolSpec(msgspec.Struct, kw_only=True):
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of an object


class ModelRequest(msgspec.Struct, kw_only=True):
    system: str
    messages: list[Message]
    tools: list[ToolSpec] = []
    max_output_tokens: int = 8192


class TextDelta(msgspec.Struct, kw_only=True):
    text: str


class TurnDone(msgspec.Struct, kw_only=True):
    """The last event of a provider stream: the whole assistant turn."""

    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    stop_reason: str | None = None


StreamEvent = TextDelta | TurnDone


def decode_arguments(call: ToolCall) -> dict[str, Any] | None:
    """The call's arguments as an object; None when they are not a JSON object."""
    text = call.arguments.strip() or "{}"
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None

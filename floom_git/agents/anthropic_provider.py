"""Anthropic messages through the official `anthropic` SDK: streamed text and tool_use blocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import anthropic
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    ToolUseBlock,
)
from anthropic.types import TextDelta as AnthropicTextDelta

from floom_git.agents.messages import (
    Message,
    ModelRequest,
    StreamEvent,
    TextDelta,
    ToolCall,
    TurnDone,
    Usage,
    decode_arguments,
)
from floom_git.agents.provider import sdk_errors

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, model: str, api_key: str, base_url: str | None, timeout: float) -> None:
        self.model = model
        # An explicit key and base_url keep ANTHROPIC_* variables and profile files of the
        # server's account out of a workspace's calls; retries are ours (see Provider).
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, max_retries=0,
            timeout=timeout, open_telemetry=False)

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        kwargs: dict[str, Any] = {}
        if request.tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description,
                                "input_schema": t.parameters} for t in request.tools]
        text: list[str] = []
        blocks: dict[int, dict[str, Any]] = {}
        input_tokens = output_tokens = 0
        stop: str | None = None
        with sdk_errors(anthropic, anthropic.AnthropicError):
            stream = await self._client.messages.create(
                model=self.model, system=request.system, stream=True,
                messages=cast(Any, wire_messages(request)),
                max_tokens=request.max_output_tokens, **kwargs)
            async with stream:
                async for event in stream:
                    if isinstance(event, RawMessageStartEvent):
                        input_tokens = event.message.usage.input_tokens or 0
                        output_tokens = event.message.usage.output_tokens or 0
                    elif isinstance(event, RawContentBlockStartEvent):
                        block = event.content_block
                        if isinstance(block, ToolUseBlock):
                            blocks[event.index] = {"id": block.id, "name": block.name, "json": []}
                    elif isinstance(event, RawContentBlockDeltaEvent):
                        delta = event.delta
                        if isinstance(delta, AnthropicTextDelta) and delta.text:
                            text.append(delta.text)
                            yield TextDelta(text=delta.text)
                        elif isinstance(delta, InputJSONDelta) and event.index in blocks:
                            blocks[event.index]["json"].append(delta.partial_json)
                    elif isinstance(event, RawMessageDeltaEvent):
                        # message_delta usage counts are cumulative for the whole message.
                        output_tokens = event.usage.output_tokens or output_tokens
                        input_tokens = event.usage.input_tokens or input_tokens
                        stop = event.delta.stop_reason or stop
        calls = [ToolCall(id=b["id"], name=b["name"], arguments="".join(b["json"]))
                 for _, b in sorted(blocks.items())]
        yield TurnDone(text="".join(text), tool_calls=calls, stop_reason=stop,
                       usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens))


def wire_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """Anthropic turns: tool results go back as tool_result blocks of a user turn, and
    neighbouring turns of one role are merged into one."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id,
                                 "content": m.content}
        if m.is_error:
            block["is_error"] = True
        return [block]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
    for call in m.tool_calls:
        # A malformed call is replayed with empty input; its tool_result says what was wrong.
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": decode_arguments(call) or {}})
    return blocks or [{"type": "text", "text": "(no reply)"}]

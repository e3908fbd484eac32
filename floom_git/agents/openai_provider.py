"""OpenAI-compatible chat completions through the official `openai` SDK: OpenAI itself, Azure
OpenAI, Ollama, vLLM, LM Studio, OpenRouter and LiteLLM proxies (anything at `base_url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

from floom_git.agents.messages import (
    Message,
    ModelRequest,
    StreamEvent,
    TextDelta,
    ToolCall,
    TurnDone,
    Usage,
)
from floom_git.agents.provider import sdk_errors

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, model: str, api_key: str, base_url: str | None, timeout: float) -> None:
        self.model = model
        # base_url is always explicit so OPENAI_BASE_URL in the server's environment cannot
        # redirect a workspace's calls; retries are ours (see Provider).
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url or DEFAULT_BASE_URL,
                                          max_retries=0, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        # The conversation goes in `extra_body`, already in wire form: the SDK's walk over typed
        # params costs milliseconds per message on the event loop, every turn, for a history
        # that only grows. The SDK documents that extra_body wins over the named params.
        body: dict[str, Any] = {"messages": wire_messages(request)}
        if request.tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools]
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        stop: str | None = None
        with sdk_errors(openai, openai.OpenAIError):
            stream = await self._client.chat.completions.create(
                model=self.model, messages=[], stream=True, extra_body=body,
                stream_options={"include_usage": True},
                # Servers that do not know the field ignore it (Ollama, older vLLM).
                max_completion_tokens=request.max_output_tokens)
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = Usage(input_tokens=chunk.usage.prompt_tokens or 0,
                                      output_tokens=chunk.usage.completion_tokens or 0)
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta.content:
                            text.append(delta.content)
                            yield TextDelta(text=delta.content)
                        for tc in delta.tool_calls or []:
                            _merge_call(calls, tc)
                        if choice.finish_reason:
                            stop = choice.finish_reason
        tool_calls = [ToolCall(id=c["id"] or f"call_{i}", name=c["name"],
                               arguments="".join(c["args"]))
                      for i, c in sorted(calls.items())]
        yield TurnDone(text="".join(text), tool_calls=tool_calls, usage=usage, stop_reason=stop)


def _merge_call(calls: dict[int, dict[str, Any]], tc: Any) -> None:
    slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": []})
    if tc.id and not slot["id"]:
        slot["id"] = tc.id
    fn = tc.function
    if fn is not None:
        # Some compatible servers repeat the name in every chunk; the first one counts.
        if fn.name and not slot["name"]:
            slot["name"] = fn.name
        if fn.arguments:
            slot["args"].append(fn.arguments)


def wire_messages(request: ModelRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    for m in request.messages:
        out.append(_wire(m))
    return out


def _wire(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        return {"role": "assistant", "content": m.content or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls]}
    return {"role": m.role, "content": m.content}

"""Wire formats of the fake LLM server: the SSE frames of a streamed OpenAI chat completion and
Anthropic message, their error bodies, and the request checks the real services also make."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.fakes.llm_server import Reply

Frame = tuple[str, bytes]  # ("data", bytes) | ("stall", b"") | ("drop", b"")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _text_frames(reply: Reply, make: Any) -> Iterator[Frame]:
    for n, piece in enumerate(_pieces(reply.text, reply.piece)):
        if reply.stall_after is not None and n == reply.stall_after:
            yield "stall", b""
        if reply.drop_after is not None and n == reply.drop_after:
            yield "drop", b""
        yield "data", make(piece)


# -- OpenAI chat completions ----------------------------------------------------------------------
def openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = {400: "invalid_request_error", 401: "invalid_request_error",
            429: "rate_limit_exceeded"}.get(status, "server_error")
    return web.json_response({"error": {"message": message, "type": kind, "param": None,
                                        "code": None}}, status=status, headers=headers)


def openai_frames(reply: Reply, body: dict[str, Any], n: int) -> Iterator[Frame]:
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(data)}\n\n".encode()

    yield "data", chunk({"role": "assistant", "content": ""})
    yield from _text_frames(reply, lambda piece: chunk({"content": piece}))
    for i, (name, args) in enumerate(reply.calls):
        yield "data", chunk({"tool_calls": [{"index": i, "id": f"call_{n}_{i}", "type": "function",
                                             "function": {"name": name, "arguments": ""}}]})
        for piece in _pieces(args, reply.piece):
            yield "data", chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    yield "data", chunk({}, "tool_calls" if reply.calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        inp, out = reply.usage
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
        yield "data", f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
    yield "data", b"data: [DONE]\n\n"


def check_openai(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        return "model and messages are required"
    if body.get("stream") is not True:
        return "this fake answers streamed requests only"
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if tool.get("type") != "function" or not fn.get("name") or fn.get("parameters", {}).get(
                "type") != "object":
            return f"invalid tool definition: {tool}"
    open_calls: set[str] = set()
    for i, m in enumerate(body["messages"]):
        role = m.get("role")
        if role == "tool":
            if m.get("tool_call_id") not in open_calls:
                return (f"messages[{i}]: role 'tool' must answer a tool_calls id of the "
                        "preceding assistant message")
            open_calls.discard(m["tool_call_id"])
            continue
        if open_calls:
            return (f"messages[{i}]: an assistant message with 'tool_calls' must be followed by "
                    f"tool messages for each tool_call_id: {sorted(open_calls)}")
        if role == "assistant":
            open_calls = {c["id"] for c in m.get("tool_calls") or []}
        elif role not in ("system", "user"):
            return f"messages[{i}]: unknown role {role!r}"
    return None


# -- Anthropic messages ---------------------------------------------------------------------------
def anthropic_error(status: int, message: str,
                    headers: dict[str, str] | None = None) -> web.Response:
    kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
            529: "overloaded_error"}.get(status, "api_error")
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}},
                             status=status, headers=headers)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def anthropic_frames(reply: Reply, body: dict[str, Any], n: int) -> Iterator[Frame]:
    inp, out = reply.usage
    yield "data", _event("message_start", {"message": {
        "id": f"msg_{n}", "type": "message", "role": "assistant", "content": [],
        "model": body["model"], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": inp, "output_tokens": 1}}})
    index = 0
    if reply.text:
        yield "data", _event("content_block_start", {"index": 0, "content_block": {
            "type": "text", "text": ""}})
        yield "data", b'event: ping\ndata: {"type": "ping"}\n\n'
        yield from _text_frames(reply, lambda piece: _event("content_block_delta", {
            "index": 0, "delta": {"type": "text_delta", "text": piece}}))
        yield "data", _event("content_block_stop", {"index": 0})
        index = 1
    for i, (name, args) in enumerate(reply.calls, start=index):
        yield "data", _event("content_block_start", {"index": i, "content_block": {
            "type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": {}}})
        for piece in _pieces(args, reply.piece):
            yield "data", _event("content_block_delta", {"index": i, "delta": {
                "type": "input_json_delta", "partial_json": piece}})
        yield "data", _event("content_block_stop", {"index": i})
    yield "data", _event("message_delta", {
        "delta": {"stop_reason": "tool_use" if reply.calls else "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": out}})
    yield "data", _event("message_stop", {})


def check_anthropic(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        return "model and messages are required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: a positive integer is required"
    if body.get("stream") is not True:
        return "this fake answers streamed requests only"
    for tool in body.get("tools") or []:
        if not tool.get("name") or (tool.get("input_schema") or {}).get("type") != "object":
            return f"invalid tool definition: {tool}"
    expected = "user"
    open_calls: set[str] = set()
    for i, m in enumerate(body["messages"]):
        if m.get("role") != expected:
            return f"messages.{i}: roles must alternate, starting with user"
        blocks = m["content"] if isinstance(m["content"], list) else [
            {"type": "text", "text": m["content"]}]
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if answered - open_calls:
            return f"messages.{i}: tool_result blocks answer unknown tool_use ids"
        if open_calls - answered:
            return (f"messages.{i}: tool_use ids were found without tool_result blocks "
                    f"immediately after: {sorted(open_calls - answered)}")
        open_calls = set()
        for b in blocks:
            if b.get("type") == "tool_use":
                if not isinstance(b.get("input"), dict):
                    return f"messages.{i}: tool_use.input must be an object"
                open_calls.add(b["id"])
            elif b.get("type") == "text" and not b.get("text"):
                return f"messages.{i}: text content blocks must be non-empty"
        expected = "assistant" if expected == "user" else "user"
    return None

"""The SDK-backed providers against the fake LLM server, once per wire protocol: streamed text,
tool calls, usage, errors and what they send."""

from __future__ import annotations

import pytest

from floom_git.agents.config import AgentConfig, make_provider
from floom_git.agents.messages import Message, ModelRequest, TextDelta, ToolCall, ToolSpec, TurnDone
from floom_git.agents.provider import Provider, ProviderError
from tests.fakes.llm_server import FakeLLM, Reply, calls, error, text

SPEC = ToolSpec(name="read_file", description="Read a file",
                parameters={"type": "object", "properties": {"path": {"type": "string"}}})


def request(**kw) -> ModelRequest:
    return ModelRequest(system="You are terse.", messages=[Message(role="user", content="hi")],
                        tools=[SPEC], max_output_tokens=300, **kw)


async def collect(provider: Provider, req: ModelRequest) -> tuple[list[str], TurnDone]:
    deltas: list[str] = []
    done = None
    async for event in provider.stream(req):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert done is None, "a stream ends with one TurnDone"
            done = event
    assert done is not None
    return deltas, done


async def test_stream_text_arrives_in_deltas_with_usage(llm: FakeLLM, provider: Provider):
    llm.script(text("The quick brown fox.", usage=(31, 9)))
    deltas, done = await collect(provider, request())
    assert len(deltas) > 1 and "".join(deltas) == "The quick brown fox."
    assert done.text == "The quick brown fox." and done.tool_calls == []
    assert (done.usage.input_tokens, done.usage.output_tokens) == (31, 9)
    assert done.stop_reason in ("stop", "end_turn")


async def test_stream_parallel_tool_calls_assembled_in_order(llm: FakeLLM, provider: Provider):
    llm.script(calls(("read_file", {"path": "context/a.md"}), ("read_file", {"path": "b"}),
                     text="Reading both."))
    _, done = await collect(provider, request())
    assert done.text == "Reading both."
    assert [c.name for c in done.tool_calls] == ["read_file", "read_file"]
    assert [c.arguments for c in done.tool_calls] == ['{"path": "context/a.md"}', '{"path": "b"}']
    assert len({c.id for c in done.tool_calls}) == 2


async def test_stream_malformed_arguments_passed_through_raw(llm: FakeLLM, provider: Provider):
    llm.script(calls(("read_file", '{"path": "a')))
    _, done = await collect(provider, request())
    assert done.tool_calls[0].arguments == '{"path": "a'


async def test_request_carries_system_tools_limit_and_history(llm: FakeLLM, provider: Provider,
                                                              protocol: str):
    llm.script(text("ok"))
    history = [Message(role="user", content="read a"),
               Message(role="assistant", content="", tool_calls=[
                   ToolCall(id="c1", name="read_file", arguments='{"path": "a"}'),
                   ToolCall(id="c2", name="read_file", arguments="{broken")]),
               Message(role="tool", tool_call_id="c1", content="A's text"),
               Message(role="tool", tool_call_id="c2", content="Error: bad", is_error=True)]
    req = ModelRequest(system="Be brief.", messages=history, tools=[SPEC], max_output_tokens=123)
    await collect(provider, req)  # the fake refuses (400) a history the real API would refuse
    body = llm.requests[-1].body
    assert body["model"] == "fake-model" and body["stream"] is True
    if protocol == "openai":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["max_completion_tokens"] == 123
        assert body["tools"][0]["function"]["name"] == "read_file"
        assert body["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "A's text"}
    else:
        assert body["system"] == "Be brief." and body["max_tokens"] == 123
        assert body["tools"][0]["input_schema"]["type"] == "object"
        results = body["messages"][2]["content"]
        assert [r["tool_use_id"] for r in results] == ["c1", "c2"]
        assert results[1]["is_error"] is True
        assert body["messages"][1]["content"][1]["input"] == {}  # the broken call replays empty


@pytest.mark.parametrize("reply,status,retryable,after", [
    (error(429, retry_after="7"), 429, True, 7.0),
    (error(500), 500, True, None),
    (error(400), 400, False, None),
])
async def test_stream_http_error_raises_provider_error(llm: FakeLLM, provider: Provider,
                                                        reply: Reply, status: int,
                                                        retryable: bool, after: float | None):
    llm.script(reply)
    with pytest.raises(ProviderError) as info:
        await collect(provider, request())
    assert (info.value.status, info.value.retryable, info.value.retry_after) == (
        status, retryable, after)
    assert f"scripted {status}" in info.value.message


async def test_stream_wrong_key_is_not_retryable(llm: FakeLLM, protocol: str):
    config = AgentConfig(provider=protocol, model="m", base_url=llm.url(protocol),  # type: ignore[arg-type]
                         api_key_secret="K", api_key="wrong")
    prov = make_provider(config, timeout=10)
    try:
        with pytest.raises(ProviderError) as info:
            await collect(prov, request())
    finally:
        await prov.aclose()
    assert info.value.status == 401 and not info.value.retryable
    assert "wrong" not in info.value.message


async def test_stream_connection_lost_midway_raises_provider_error(llm: FakeLLM,
                                                                    provider: Provider):
    llm.script(text("a long answer that breaks", drop_after=2))
    with pytest.raises(ProviderError) as info:
        await collect(provider, request())
    assert info.value.status is None and "connection" in info.value.message

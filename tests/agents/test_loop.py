"""The tool loop end to end against the fake LLM, once per wire protocol: tools run, results go
back to the model, bad calls are answered and bounded, outputs are checked, events are sent."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from floom_git.agents.events import (
    AgentEnd,
    AgentLog,
    ModelTurn,
    TextDeltaEvent,
    ToolCallRecord,
    ToolCallStarted,
    TurnStarted,
)
from floom_git.agents.loop import Limits, run_agent
from floom_git.agents.provider import Provider
from floom_git.agents.run_tools import log_tool
from floom_git.agents.transcript import Transcript
from tests.agents.conftest import Recorder
from tests.agents.helpers import AgentRun, finish
from tests.fakes.llm_server import FakeLLM, call, calls, text


def tool_results(llm: FakeLLM, index: int = -1) -> list[tuple[str, bool]]:
    """(content, is_error) of the tool results in the request `index`, in either protocol."""
    seen = llm.requests[index]
    out = []
    for m in seen.body["messages"]:
        if seen.protocol == "openai" and m["role"] == "tool":
            out.append((m["content"], m["content"].startswith("Error:")))
        elif seen.protocol == "anthropic" and isinstance(m["content"], list):
            out += [(b["content"], b.get("is_error", False)) for b in m["content"]
                    if b["type"] == "tool_result"]
    return out


async def test_run_agent_reads_context_and_finishes(llm: FakeLLM, provider: Provider,
                                                    sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call("list_files", {}), call("read_file", {"path": "context/company/about.md"}),
               calls(finish("# Brief\nWe make widgets.", score="4.5"), text="Done."))
    result = await run.start(provider, sink)
    assert (result.status, result.error_code) == ("completed", None)
    assert result.outputs == {"brief": "out/brief.md", "score": 4.5}
    assert (run.workdir / "out" / "brief.md").read_text() == "# Brief\nWe make widgets."
    assert result.text == "Done." and result.usage.input_tokens == 36
    listing = json.loads(tool_results(llm, 1)[0][0])
    assert listing["files"] == [{"path": "context/company/about.md", "size": 25}]
    assert "We make widgets." in tool_results(llm, 2)[1][0]
    assert [r.name for r in result.tool_calls] == ["list_files", "read_file", "finish_with_outputs"]
    assert all(r.error is None and r.duration_ms >= 0 for r in result.tool_calls)
    kinds = [type(e).__name__ for e in sink.events if not isinstance(e, TextDeltaEvent)]
    assert kinds[:4] == ["TurnStarted", "ModelTurn", "ToolCallStarted", "ToolCallRecord"]
    assert kinds[-1] == "AgentEnd" and sink.of(AgentEnd)[0].status == "completed"
    assert [e.turn for e in sink.of(TurnStarted)] == [1, 2, 3]
    assert sink.of(ModelTurn)[2].total_usage.output_tokens == 21


async def test_run_agent_without_output_sink_completes_on_plain_answer(llm: FakeLLM,
                                                                      provider: Provider,
                                                                      sink: Recorder):
    llm.script(call("log", {"message": "thinking", "level": "warning"}), text("Forty-two."))
    transcript = Transcript.start(provider=provider.name, model=provider.model, system="s",
                                  user="What is the answer?")
    result = await run_agent(provider, transcript, [log_tool(sink)], sink)  # like a chat
    assert (result.status, result.text, result.outputs) == ("completed", "Forty-two.", {})
    assert "".join(e.text for e in sink.of(TextDeltaEvent)) == "Forty-two."
    assert [(e.level, e.message) for e in sink.of(AgentLog)] == [("warning", "thinking")]
    assert tool_results(llm)[0] == ("logged", False)


async def test_run_agent_parallel_calls_all_answered(llm: FakeLLM, provider: Provider,
                                                     sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(calls(("read_file", {"path": "context/company/about.md"}),
                     ("log", {"message": "read it"}),
                     ("write_output", {"name": "score", "value": 3})),
               call(*finish()))
    result = await run.start(provider, sink)
    assert result.status == "completed"
    results = tool_results(llm, 1)
    assert len(results) == 3 and not any(err for _, err in results)
    assert [e.name for e in sink.of(ToolCallStarted)][:3] == ["read_file", "log", "write_output"]
    assert result.outputs["score"] == 3


async def test_run_agent_malformed_call_answered_then_continues(llm: FakeLLM, provider: Provider,
                                                                sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call("read_file", '{"path": "context/company/ab'),
               call("read_file", {"path": 7}), call(*finish()))
    result = await run.start(provider, sink)
    assert result.status == "completed"
    first, second = result.tool_calls[0], result.tool_calls[1]
    assert (
        first.error_code == "malformed_tool_call"
        and first.arguments == '{"path": "context/company/ab'
    )
    assert second.error_code == "malformed_tool_call" and "$.path" in (second.error or "")
    content, is_error = tool_results(llm, 1)[0]
    assert is_error and "not a JSON object" in content
    assert result.transcript.bad_calls == 2


async def test_run_agent_unknown_tool_answered_then_continues(llm: FakeLLM, provider: Provider,
                                                              sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call("web_search", {"q": "widgets"}), call(*finish()))
    result = await run.start(provider, sink)
    assert result.status == "completed"
    assert result.tool_calls[0].error_code == "unknown_tool"
    content, is_error = tool_results(llm, 1)[0]
    assert is_error and "no tool named 'web_search'" in content and "read_file" in content


async def test_run_agent_bad_calls_past_the_bound_fail(llm: FakeLLM, provider: Provider,
                                                       sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call("nope", {}), call("read_file", "[1]"))
    result = await run.start(provider, sink, limits=Limits(max_bad_calls=1))
    assert (result.status, result.error_code) == ("failed", "malformed_tool_call")
    assert len(llm.requests) == 2


async def test_run_agent_stop_without_outputs_is_nudged_then_fails(llm: FakeLLM,
                                                                   provider: Provider,
                                                                   sink: Recorder,
                                                                   tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(text("I think widgets are great."), call(*finish()))
    result = await run.start(provider, sink)
    assert result.status == "completed"
    nudge = llm.requests[1].body["messages"][-1]
    assert nudge["role"] == "user" and "brief" in json.dumps(nudge["content"])
    llm.script(text("No."), text("Still no."))
    again = await AgentRun(tmp_path / "2").start(provider, sink, limits=Limits(max_bad_calls=1))
    assert (again.status, again.error_code) == ("failed", "missing_outputs")


async def test_run_agent_invalid_output_refused_then_fixed(llm: FakeLLM, provider: Provider,
                                                           sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call(*finish(score="lots")), call("finish_with_outputs", {"outputs": {}}),
               call(*finish(score=2)))
    result = await run.start(provider, sink)
    assert result.status == "completed" and result.outputs["score"] == 2
    assert [r.error_code for r in result.tool_calls] == ["tool_error", "tool_error", None]
    assert "outputs.score: expected a number" in (result.tool_calls[0].error or "")
    assert "missing outputs: brief" in (result.tool_calls[1].error or "")
    assert result.transcript.bad_calls == 0


async def test_run_agent_disabled_tools_are_not_offered(llm: FakeLLM, provider: Provider,
                                                        sink: Recorder, tmp_path: Path,
                                                        protocol: str):
    run = AgentRun(tmp_path, disabled=("read_file", "request_approval", "web_search"))
    llm.script(call("read_file", {"path": "context/company/about.md"}), call(*finish()))
    result = await run.start(provider, sink)
    body = llm.requests[0].body
    names = [t["function"]["name"] if protocol == "openai" else t["name"] for t in body["tools"]]
    assert names == ["list_files", "write_output", "finish_with_outputs", "log"]
    assert result.tool_calls[0].error_code == "unknown_tool"


async def test_events_encode_as_json_lines(llm: FakeLLM, provider: Provider, sink: Recorder,
                                           tmp_path: Path):
    llm.script(call(*finish()))
    await AgentRun(tmp_path).start(provider, sink)
    lines = [msgspec.json.encode(e) for e in sink.events]
    types = [json.loads(line)["type"] for line in lines]
    assert types[0] == "turn_start" and types[-1] == "agent_end" and "tool_call" in types
    record = msgspec.json.decode(lines[types.index("tool_call")], type=ToolCallRecord)
    assert record.name == "finish_with_outputs"

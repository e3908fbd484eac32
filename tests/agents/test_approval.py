"""`request_approval` parks the run with a transcript that survives JSON storage; a decision
resumes it, with a new provider as after a restart, once per wire protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from floom_git.agents.config import AgentConfig, make_provider
from floom_git.agents.loop import Limits, run_agent
from floom_git.agents.provider import Provider
from floom_git.agents.transcript import decode, encode
from tests.agents.conftest import Recorder
from tests.agents.helpers import AgentRun, finish
from tests.fakes.llm_server import KEY, FakeLLM, call, calls


async def test_request_approval_parks_then_resumes_after_restart(llm: FakeLLM, provider: Provider,
                                                                 sink: Recorder, tmp_path: Path,
                                                                 protocol: str):
    run = AgentRun(tmp_path)
    llm.script(calls(("write_output", {"name": "brief", "value": "# Draft"}),
                     ("request_approval", {"label": "Publish the brief", "preview": "# Draft"}),
                     ("log", {"message": "too early"})))
    parked = await run.start(provider, sink)
    assert (parked.status, parked.error_code) == ("pending_approval", None)
    assert parked.approval is not None and parked.approval.label == "Publish the brief"
    assert [r.error_code for r in parked.tool_calls] == [None, None, "skipped"]
    assert parked.tool_calls[1].result == {"status": "pending_approval"}
    stored = encode(parked.transcript)  # what the run engine keeps durably
    json.loads(stored)

    transcript = decode(stored)
    transcript.decide(True, reason="Looks right", decided_by="usr_1")
    config = AgentConfig(provider=protocol, model="fake-model", base_url=llm.url(protocol),  # type: ignore[arg-type]
                         api_key_secret="K", api_key=KEY)
    fresh = make_provider(config, timeout=30)
    llm.script(call(*finish("# Final")))
    try:
        result = await run.resume(fresh, sink, transcript)
    finally:
        await fresh.aclose()
    assert result.status == "completed"
    assert result.outputs == {"brief": "out/brief.md"}
    assert (run.workdir / "out" / "brief.md").read_text() == "# Final"
    assert result.tool_calls[1].result["decision"] == "approved"
    resumed = json.dumps(llm.requests[-1].body["messages"])
    assert "Looks right" in resumed and "call it again after the approval decision" in resumed
    assert result.transcript.turns == 2 and result.usage.input_tokens == 24


async def test_rejected_approval_resumes_with_the_decision(llm: FakeLLM, provider: Provider,
                                                           sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call("request_approval", {"label": "Send it"}))
    parked = await run.start(provider, sink)
    parked.transcript.decide(False, reason="Not now")
    llm.script(call(*finish("# Not sent")))
    result = await run.resume(provider, sink, parked.transcript)
    assert result.status == "completed"
    sent = json.dumps(llm.requests[-1].body)
    assert "rejected" in sent and "Not now" in sent


async def test_resume_undecided_transcript_refused(llm: FakeLLM, provider: Provider,
                                                   sink: Recorder, tmp_path: Path):
    llm.script(call("request_approval", {"label": "Send it"}))
    parked = await AgentRun(tmp_path).start(provider, sink)
    with pytest.raises(ValueError, match="decide the pending approval"):
        await run_agent(provider, parked.transcript, [], sink)
    parked.transcript.decide(True)
    with pytest.raises(ValueError, match="not waiting"):
        parked.transcript.decide(True)


async def test_resume_keeps_counting_limits_and_time(llm: FakeLLM, provider: Provider,
                                                     sink: Recorder, tmp_path: Path):
    run = AgentRun(tmp_path)
    llm.script(call("request_approval", {"label": "Go on?"}))
    parked = await run.start(provider, sink)
    spent = parked.transcript.elapsed_s
    assert spent > 0
    parked.transcript.decide(True)
    result = await run.resume(provider, sink, parked.transcript,
                              limits=Limits(max_tool_iterations=1))
    assert (result.status, result.error_code) == ("failed", "iteration_limit")
    assert result.transcript.elapsed_s >= spent


def test_decode_refuses_other_documents():
    with pytest.raises(ValueError, match="not an agent transcript"):
        decode(b'{"messages": 1}')
    with pytest.raises(ValueError, match="version 9"):
        decode(b'{"version": 9, "provider": "openai", "model": "m", "system": "", "messages": []}')

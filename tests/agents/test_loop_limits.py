"""How the loop ends when the provider fails or a limit is reached, once per wire protocol:
retries honour Retry-After up to a cap, stalls and deadlines end the run with their own codes."""

from __future__ import annotations

import time
from pathlib import Path

from floom_git.agents.events import ProviderRetry
from floom_git.agents.loop import Limits
from floom_git.agents.provider import Provider
from floom_git.agents.turn import RetryPolicy
from tests.agents.conftest import Recorder
from tests.agents.helpers import AgentRun, finish
from tests.fakes.llm_server import FakeLLM, call, error, text


async def test_run_agent_429_waits_retry_after_then_succeeds(llm: FakeLLM, provider: Provider,
                                                             sink: Recorder, tmp_path: Path):
    llm.script(error(429, retry_after="1"), call(*finish()))
    began = time.monotonic()
    result = await AgentRun(tmp_path).start(provider, sink)
    assert result.status == "completed"
    assert time.monotonic() - began >= 1.0
    [retry] = sink.of(ProviderRetry)
    assert (retry.attempt, retry.delay_s, retry.status) == (1, 1.0, 429)
    assert len(llm.requests) == 2


async def test_run_agent_429_asking_past_the_cap_fails_at_once(llm: FakeLLM, provider: Provider,
                                                               sink: Recorder, tmp_path: Path):
    llm.script(error(429, retry_after="3600"))
    began = time.monotonic()
    result = await AgentRun(tmp_path).start(
        provider, sink, policy=RetryPolicy(max_retry_after=30))
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert "3600s, more than the 30s cap" in (result.error or "")
    assert time.monotonic() - began < 5 and sink.of(ProviderRetry) == []


async def test_run_agent_500_retried_with_backoff(llm: FakeLLM, provider: Provider,
                                                  sink: Recorder, tmp_path: Path):
    llm.script(error(500), error(503), call(*finish()))
    result = await AgentRun(tmp_path).start(provider, sink)
    assert result.status == "completed"
    assert [(r.attempt, r.status) for r in sink.of(ProviderRetry)] == [(1, 500), (2, 503)]
    assert [r.delay_s for r in sink.of(ProviderRetry)] == [0.01, 0.02]


async def test_run_agent_500_past_max_retries_fails(llm: FakeLLM, provider: Provider,
                                                    sink: Recorder, tmp_path: Path):
    llm.script(*[error(500)] * 3)
    result = await AgentRun(tmp_path).start(
        provider, sink, policy=RetryPolicy(max_retries=2, backoff_base=0.01))
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert result.error is not None and result.error.startswith("HTTP 500")
    assert len(llm.requests) == 3


async def test_run_agent_client_error_not_retried(llm: FakeLLM, provider: Provider,
                                                  sink: Recorder, tmp_path: Path):
    llm.script(error(400), call(*finish()))
    result = await AgentRun(tmp_path).start(provider, sink)
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert len(llm.requests) == 1


async def test_run_agent_stalled_stream_fails_with_provider_timeout(llm: FakeLLM,
                                                                    provider: Provider,
                                                                    sink: Recorder,
                                                                    tmp_path: Path):
    llm.script(text("Let me think about this", stall_after=1))
    result = await AgentRun(tmp_path).start(
        provider, sink, policy=RetryPolicy(stall_timeout=0.3))
    assert (result.status, result.error_code) == ("failed", "provider_timeout")
    assert "nothing for 0.3s" in (result.error or "")


async def test_run_agent_connection_lost_after_text_not_retried(llm: FakeLLM, provider: Provider,
                                                                sink: Recorder, tmp_path: Path):
    llm.script(text("Here is half an answ", drop_after=2), call(*finish()))
    result = await AgentRun(tmp_path).start(provider, sink)
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert len(llm.requests) == 1


async def test_run_agent_deadline_ends_run_with_timeout(llm: FakeLLM, provider: Provider,
                                                        sink: Recorder, tmp_path: Path):
    llm.script(text("Slowly now", stall_after=1))
    began = time.monotonic()
    result = await AgentRun(tmp_path).start(provider, sink, limits=Limits(timeout_s=0.5))
    assert (result.status, result.error_code) == ("failed", "timeout")
    assert time.monotonic() - began < 5
    assert result.transcript.elapsed_s >= 0.5


async def test_run_agent_iteration_limit(llm: FakeLLM, provider: Provider, sink: Recorder,
                                         tmp_path: Path):
    llm.script(call("log", {"message": "1"}), call("log", {"message": "2"}))
    result = await AgentRun(tmp_path).start(provider, sink,
                                            limits=Limits(max_tool_iterations=2))
    assert (result.status, result.error_code) == ("failed", "iteration_limit")
    assert len(llm.requests) == 2 and len(result.tool_calls) == 2


async def test_run_agent_iteration_limit_with_outputs_written_completes(llm: FakeLLM,
                                                                        provider: Provider,
                                                                        sink: Recorder,
                                                                        tmp_path: Path):
    llm.script(call("write_output", {"name": "brief", "value": "# B"}))
    result = await AgentRun(tmp_path).start(provider, sink,
                                            limits=Limits(max_tool_iterations=1))
    assert (result.status, result.outputs) == ("completed", {"brief": "out/brief.md"})


async def test_run_agent_token_budget(llm: FakeLLM, provider: Provider, sink: Recorder,
                                      tmp_path: Path, protocol: str):
    llm.script(call("log", {"message": "1"}), call("log", {"message": "2"}))  # 19 tokens each
    result = await AgentRun(tmp_path).start(
        provider, sink, limits=Limits(max_total_tokens=25, max_turn_output_tokens=100))
    assert (result.status, result.error_code) == ("failed", "token_budget_exceeded")
    assert result.usage.total == 38
    field = "max_completion_tokens" if protocol == "openai" else "max_tokens"
    assert [r.body[field] for r in llm.requests] == [25, 6]  # never more than the budget left

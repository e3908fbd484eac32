"""The agent tool loop: call the model, run the tools it asks for, hand back their results, until
it finishes, stops, waits for an approval, or a limit ends it. Every step goes to the event sink.

How a run ends (`AgentResult.status`, `error_code`):
- completed: `finish_with_outputs` succeeded, or the model stopped calling tools with its outputs
  complete (a run without an OutputSink, e.g. a chat, completes whenever the model stops).
- pending_approval: `request_approval` was called; `Transcript.decide` then `run_agent` resumes.
- failed `provider_error`: the provider refused or failed after retries (429 waits Retry-After
  up to RetryPolicy.max_retry_after; 408/409/5xx/lost connections back off), or failed after
  text had already streamed.
- failed `provider_timeout`: the stream sent nothing for RetryPolicy.stall_timeout seconds.
- failed `timeout`: the run used up Limits.timeout_s (time parked for approval not counted).
- `malformed_tool_call` (arguments not a JSON object or not matching the tool's schema) and
  `unknown_tool`: the model gets an error result and the loop goes on; the run fails with that
  code once more than Limits.max_bad_calls such calls (and nudges) were made.
- failed `missing_outputs`: the model kept stopping without its outputs (each stop is answered
  with a nudge naming the missing outputs, counted like a bad call).
- `iteration_limit` / `token_budget_exceeded`: a limit stops the next model call; the run still
  completes if its outputs are complete, else fails with that code. The tools of the last
  allowed turn do run.
A tool that refuses a call (`tool_error`, or its own code such as a remote tool's
`tool_timeout`) never ends the run by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import msgspec

from floom_git.agents.events import (
    AgentEnd,
    AgentLog,
    ModelTurn,
    ProviderRetry,
    Sink,
    TextDeltaEvent,
    ToolCallRecord,
    ToolCallStarted,
    TurnStarted,
)
from floom_git.agents.messages import Message, ModelRequest, ToolCall, Usage, decode_arguments
from floom_git.agents.outputs import OutputSink
from floom_git.agents.pricing import PriceTable
from floom_git.agents.provider import Provider, ProviderError
from floom_git.agents.tools import AwaitApproval, BadArguments, Finished, Tool, ToolError
from floom_git.agents.transcript import PendingApproval, Transcript
from floom_git.agents.turn import RetryPolicy, model_turn
from floom_git.schemas.manifest import Limits as ManifestLimits

Status = Literal["completed", "failed", "pending_approval"]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_tool_iterations: int = 12  # model calls per run
    max_total_tokens: int = 1_000_000
    max_output_tokens: int = 1_000_000
    max_turn_output_tokens: int = 8192  # asked of the provider per call (budget permitting)
    max_bad_calls: int = 3
    max_tool_result_chars: int = 50_000
    timeout_s: float = 300.0

    @classmethod
    def of(cls, manifest: ManifestLimits, timeout_s: float) -> Limits:
        """A worker's `limits:` with the run's effective timeout (capped by the server)."""
        return cls(max_tool_iterations=manifest.max_tool_iterations,
                   max_total_tokens=manifest.max_total_tokens,
                   max_output_tokens=manifest.max_output_tokens, timeout_s=timeout_s)


DEFAULT_LIMITS = Limits()
DEFAULT_POLICY = RetryPolicy()


class AgentResult(msgspec.Struct, kw_only=True):
    status: Status
    error_code: str | None = None
    error: str | None = None
    outputs: dict[str, Any] = {}
    text: str = ""  # the model's last words
    usage: Usage
    cost_usd: float | None = None
    tool_calls: list[ToolCallRecord] = []
    approval: PendingApproval | None = None
    transcript: Transcript


class _End(Exception):
    def __init__(self, status: Status, code: str | None = None, message: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def run_agent(provider: Provider, transcript: Transcript, tools: list[Tool], sink: Sink, *,
                    limits: Limits = DEFAULT_LIMITS, policy: RetryPolicy = DEFAULT_POLICY,
                    outputs: OutputSink | None = None,
                    prices: PriceTable | None = None) -> AgentResult:
    """Run (or resume) the loop on `transcript`, which it updates in place.

    Raises ValueError when the transcript still waits for an approval decision.
    """
    if transcript.pending is not None:
        raise ValueError("decide the pending approval (Transcript.decide) before resuming")
    clock = asyncio.get_running_loop()
    started = clock.time()
    deadline = started + max(0.0, limits.timeout_s - transcript.elapsed_s)
    steps = _Steps(provider, transcript, tools, sink, limits, policy, outputs, deadline)
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            end = await steps.loop()
    except TimeoutError:
        if not scope.expired():
            raise
        end = _End("failed", "timeout", f"the run took longer than {limits.timeout_s:g}s")
    except ProviderError as exc:
        end = _End("failed", exc.code, exc.message)
    finally:
        transcript.elapsed_s += clock.time() - started
    if outputs is not None:
        transcript.outputs = dict(outputs.values)
    cost = prices.cost(transcript.model, transcript.usage) if prices is not None else None
    await sink(AgentEnd(status=end.status, error_code=end.code, error=end.message,
                        usage=transcript.usage, cost_usd=cost))
    return AgentResult(status=end.status, error_code=end.code, error=end.message,
                       outputs=dict(transcript.outputs), text=steps.last_text,
                       usage=transcript.usage, cost_usd=cost, tool_calls=transcript.tool_calls,
                       approval=transcript.pending, transcript=transcript)


class _Steps:
    def __init__(self, provider: Provider, transcript: Transcript, tools: list[Tool], sink: Sink,
                 limits: Limits, policy: RetryPolicy, outputs: OutputSink | None,
                 deadline: float) -> None:
        self.provider, self.t, self.sink = provider, transcript, sink
        self.tools = {tool.name: tool for tool in tools}
        self.specs = [tool.spec for tool in tools]
        self.limits, self.policy, self.outputs, self.deadline = limits, policy, outputs, deadline
        self.last_text = next((m.content for m in reversed(transcript.messages)
                               if m.role == "assistant" and m.content), "")

    async def loop(self) -> _End:
        while True:
            try:
                self._check_limits()
                await self._turn()
            except _End as end:
                return end

    def _check_limits(self) -> None:
        t, lim = self.t, self.limits
        if t.turns >= lim.max_tool_iterations:
            self._limit("iteration_limit", f"used all {lim.max_tool_iterations} model calls "
                                           "(limits.max_tool_iterations)")
        if self._room() <= 0:
            self._limit("token_budget_exceeded", f"used {t.usage.total} tokens "
                        f"({t.usage.output_tokens} output) of the run's budget")

    def _room(self) -> int:
        u, lim = self.t.usage, self.limits
        return min(lim.max_output_tokens - u.output_tokens, lim.max_total_tokens - u.total)

    def _limit(self, code: str, message: str) -> None:
        if self.outputs is not None and not self.outputs.missing():
            raise _End("completed")
        raise _End("failed", code, message)

    async def _turn(self) -> None:
        t = self.t
        t.turns += 1
        turn = t.turns
        await self.sink(TurnStarted(turn=turn))
        request = ModelRequest(system=t.system, messages=t.messages, tools=self.specs,
                               max_output_tokens=min(self.limits.max_turn_output_tokens,
                                                     self._room()))

        async def on_delta(text: str) -> None:
            await self.sink(TextDeltaEvent(turn=turn, text=text))

        async def on_retry(attempt: int, delay: float, exc: ProviderError) -> None:
            await self.sink(ProviderRetry(turn=turn, attempt=attempt, delay_s=delay,
                                          status=exc.status, message=exc.message))

        began = time.monotonic()
        done = await model_turn(self.provider, request, self.policy, on_delta, on_retry,
                                deadline=self.deadline)
        t.usage = t.usage + done.usage
        t.messages.append(Message(role="assistant", content=done.text, tool_calls=done.tool_calls))
        if done.text:
            self.last_text = done.text
        await self.sink(ModelTurn(turn=turn, text=done.text, tool_calls=done.tool_calls,
                                  stop_reason=done.stop_reason, usage=done.usage,
                                  total_usage=t.usage, duration_ms=_ms(began)))
        if not done.tool_calls:
            self._stopped()
            return
        await self._calls(turn, done.tool_calls)

    def _stopped(self) -> None:
        missing = self.outputs.missing() if self.outputs is not None else []
        if not missing:
            raise _End("completed")
        self.t.bad_calls += 1
        if self.t.bad_calls > self.limits.max_bad_calls:
            raise _End("failed", "missing_outputs", "the model stopped without writing its "
                       f"outputs: {', '.join(missing)}")
        how = " or ".join(n for n in ("finish_with_outputs", "write_output") if n in self.tools)
        self.t.messages.append(Message(role="user", content=(
            f"The run is not finished: these outputs are missing: {', '.join(missing)}. "
            f"Record them with {how or 'the output tools'}.")))

    async def _calls(self, turn: int, calls: list[ToolCall]) -> None:
        control: Finished | AwaitApproval | None = None
        bad: str | None = None
        for call in calls:
            args = decode_arguments(call)
            shown: Any = args if args is not None else call.arguments
            tool = self.tools.get(call.name)
            await self.sink(ToolCallStarted(turn=turn, id=call.id, name=call.name, arguments=shown,
                                            connection_id=tool.connection_id if tool else None))
            began = time.monotonic()
            result: Any
            code: str | None
            error: str | None
            if control is not None:
                result, code, error = None, "skipped", (
                    "not run: the run is finished" if isinstance(control, Finished)
                    else "not run: call it again after the approval decision")
            else:
                result, code, error = await self._call(call, args)
            if code in ("unknown_tool", "malformed_tool_call"):
                bad = code
                self.t.bad_calls += 1
            parked = isinstance(result, AwaitApproval)
            if isinstance(result, Finished):
                control, result = result, result.message
            elif isinstance(result, AwaitApproval):
                self.t.pending = PendingApproval(call_id=call.id, label=result.label,
                                                 preview=result.preview)
                control, result = result, {"status": "pending_approval"}
            record = ToolCallRecord(turn=turn, id=call.id, name=call.name, arguments=shown,
                                    result=result, error=error, error_code=code,
                                    duration_ms=_ms(began),
                                    connection_id=tool.connection_id if tool else None)
            self.t.tool_calls.append(record)
            await self.sink(record)
            if not parked:  # the decision answers a request_approval call (Transcript.decide)
                self.t.messages.append(self._answer(call, result, error))
        if isinstance(control, Finished):
            raise _End("completed")
        if isinstance(control, AwaitApproval):
            raise _End("pending_approval")
        if bad is not None and self.t.bad_calls > self.limits.max_bad_calls:
            raise _End("failed", bad, f"more than {self.limits.max_bad_calls} malformed or "
                       f"unknown tool calls (the last: {bad})")

    async def _call(self, call: ToolCall, args: dict[str, Any] | None
                    ) -> tuple[Any, str | None, str | None]:
        """(result, error_code, error) of one call."""
        tool = self.tools.get(call.name)
        if tool is None:
            return None, "unknown_tool", (f"there is no tool named {call.name!r}; tools: "
                                          f"{', '.join(self.tools) or 'none'}")
        if args is None:
            return None, "malformed_tool_call", ("the arguments are not a JSON object: "
                                                 f"{call.arguments[:200]!r}")
        try:
            return await tool.fn(args), None, None
        except BadArguments as exc:
            return None, "malformed_tool_call", f"invalid arguments: {exc}"
        except ToolError as exc:
            return None, exc.code, str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken tool must not take the run down
            error = f"the tool failed: {type(exc).__name__}: {exc}"
            await self.sink(AgentLog(level="error", message=f"tool {call.name}: {error}"))
            return None, "tool_error", error

    def _answer(self, call: ToolCall, result: Any, error: str | None) -> Message:
        text = f"Error: {error}" if error is not None else (
            result if isinstance(result, str) else json.dumps(result, default=str))
        cap = self.limits.max_tool_result_chars
        if len(text) > cap:
            text = text[:cap] + f"\n[cut: {len(text) - cap} more characters]"
        return Message(role="tool", tool_call_id=call.id, content=text, is_error=error is not None)


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)

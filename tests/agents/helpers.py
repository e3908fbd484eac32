"""Setting up an agent run for the tests: a context on disk, declared outputs, the built-in tools
and a fresh transcript, run through the real loop against the fake LLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floom_git.agents.loop import DEFAULT_LIMITS, AgentResult, Limits, run_agent
from floom_git.agents.outputs import OutputSink
from floom_git.agents.provider import Provider
from floom_git.agents.run_tools import agent_run_tools
from floom_git.agents.transcript import Transcript
from floom_git.agents.turn import RetryPolicy
from floom_git.schemas.manifest import Field

FAST = RetryPolicy(backoff_base=0.01, backoff_max=0.05, stall_timeout=10.0)
BRIEF = Field(name="brief", kind="file", media_type="text/markdown", path="out/brief.md",
              required=True)
SCORE = Field(name="score", type="number")


class AgentRun:
    def __init__(self, root: Path, fields: list[Field] | None = None,
                 disabled: tuple[str, ...] = ()) -> None:
        self.context = root / "contexts" / "company"
        self.context.mkdir(parents=True, exist_ok=True)
        (self.context / "about.md").write_text("# About\nWe make widgets.\n")
        self.workdir = root / "run"
        self.fields = [BRIEF, SCORE] if fields is None else fields
        self.disabled = disabled

    def sink_for(self, values: dict[str, Any] | None = None) -> OutputSink:
        return OutputSink(self.fields, self.workdir, values)

    async def start(self, provider: Provider, sink: Any, *, limits: Limits = DEFAULT_LIMITS,
                    policy: RetryPolicy = FAST, user: str = "Write the brief.") -> AgentResult:
        transcript = Transcript.start(provider=provider.name, model=provider.model,
                                      system="You write briefs.", user=user)
        return await self.resume(provider, sink, transcript, limits=limits, policy=policy)

    async def resume(self, provider: Provider, sink: Any, transcript: Transcript, *,
                     limits: Limits = DEFAULT_LIMITS, policy: RetryPolicy = FAST) -> AgentResult:
        outputs = self.sink_for(transcript.outputs)
        tools = agent_run_tools(mounts={"company": self.context}, outputs=outputs, sink=sink,
                                disabled=self.disabled)
        return await run_agent(provider, transcript, tools, sink, limits=limits, policy=policy,
                               outputs=outputs)


def finish(brief: str = "# Brief\nWidgets.", **extra: Any) -> tuple[str, dict[str, Any]]:
    return ("finish_with_outputs", {"outputs": {"brief": brief, **extra}})

"""The agent runtime's own time per tool-loop step against the fake LLM server (both wire
protocols): the whole loop's wall time minus the time spent inside the provider (SDK, HTTP and
the fake server), per model turn. Each step runs real tools (read_file, log) and every event is
written as a JSON line, like a run's logs.ndjson. `python -m benchmarks.agent_loop [--quick]`;
aim <= 5 ms per step."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from floom_git.agents.config import AgentConfig, make_provider
from floom_git.agents.events import Event
from floom_git.agents.loop import Limits, run_agent
from floom_git.agents.messages import ModelRequest, StreamEvent
from floom_git.agents.outputs import OutputSink
from floom_git.agents.provider import Provider
from floom_git.agents.run_tools import agent_run_tools
from floom_git.agents.transcript import Transcript
from floom_git.schemas.manifest import Field
from tests.fakes.llm_server import KEY, FakeLLM, call, text

AIM_MS = 5.0


class TimedProvider:
    """A provider that adds up the time its turns take, from the request to the last event."""

    def __init__(self, inner: Provider) -> None:
        self.inner, self.name, self.model = inner, inner.name, inner.model
        self.seconds = 0.0

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        began = time.perf_counter()
        async for event in self.inner.stream(request):
            self.seconds += time.perf_counter() - began
            yield event
            began = time.perf_counter()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _one(llm: FakeLLM, protocol: str, steps: int, work: Path) -> tuple[float, float]:
    """(runtime seconds outside the provider, provider seconds) of a run of `steps` turns."""
    context = work / "context"
    context.mkdir(parents=True, exist_ok=True)
    (context / "notes.md").write_text("# Notes\n" + "A line of notes.\n" * 200)
    for i in range(steps - 1):
        llm.script(call("read_file", {"path": "context/notes/notes.md"}) if i % 2 == 0
                   else call("log", {"message": f"step {i}"}))
    llm.script(call("finish_with_outputs", {"outputs": {"summary": "done"}}), text("ok"))
    config = AgentConfig(provider=protocol, model="fake-model", base_url=llm.url(protocol),  # type: ignore[arg-type]
                         api_key_secret="K", api_key=KEY)
    provider = TimedProvider(make_provider(config, timeout=30))
    log = (work / "logs.ndjson").open("ab")

    async def sink(event: Event) -> None:
        log.write(msgspec.json.encode(event) + b"\n")

    outputs = OutputSink([Field(name="summary", type="string", required=True)], work / "run")
    tools = agent_run_tools(mounts={"notes": context}, outputs=outputs, sink=sink)
    transcript = Transcript.start(provider=provider.name, model=provider.model,
                                  system="You summarise notes.", user="Summarise.")
    try:
        began = time.perf_counter()
        result = await run_agent(provider, transcript, tools, sink, outputs=outputs,
                                 limits=Limits(max_tool_iterations=steps + 1))
        total = time.perf_counter() - began
    finally:
        log.close()
        await provider.aclose()
    if result.status != "completed" or result.transcript.turns != steps:
        raise RuntimeError(f"benchmark run ended {result.status} {result.error}")
    llm.replies.clear()
    return total - provider.seconds, provider.seconds


async def measure(steps: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Per protocol: (runtime ms per step, provider ms per step), the best of `rounds` runs
    after one warm-up (SDK import, connection)."""
    llm = await FakeLLM().start()
    work = Path(tempfile.mkdtemp(prefix="floom-agent-bench-"))
    out: dict[str, tuple[float, float]] = {}
    try:
        for protocol in ("openai", "anthropic"):
            await _one(llm, protocol, 3, work / f"{protocol}-warm")
            per_step = []
            for n in range(rounds):
                own, prov = await _one(llm, protocol, steps, work / f"{protocol}-{n}")
                per_step.append((own * 1000 / steps, prov * 1000 / steps))
            out[protocol] = min(per_step)
    finally:
        await llm.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def run(quick: bool) -> list[tuple[str, str, str]]:
    """Rows for scripts/bench: (measure, runtime per step, provider per step)."""
    steps, rounds = (10, 1) if quick else (50, 3)
    results = asyncio.run(measure(steps, rounds))
    return [(f"agent loop overhead per step, {protocol} ({steps} steps)", f"{own:.2f} ms",
             f"provider {prov:.2f} ms") for protocol, (own, prov) in results.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent_loop", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for name, own, prov in run(args.quick):
        print(f"{name}: {own} ({prov}; aim <= {AIM_MS:g} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The template's own agent worker (`research-brief`) driven through the library the way the run
engine will drive it: manifest -> config -> provider -> tools -> first message -> loop, against
the fake LLM; and the template workspace, which configures no provider, needs setup."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from floom_git.agents.config import NeedsSetup, make_provider, resolve_agent_config
from floom_git.agents.loop import Limits, run_agent
from floom_git.agents.outputs import OutputSink
from floom_git.agents.pricing import PriceTable
from floom_git.agents.prompt import first_message
from floom_git.agents.run_tools import agent_run_tools
from floom_git.agents.transcript import Transcript
from floom_git.codec import load_yaml
from floom_git.schemas.manifest import parse_manifest
from tests.agents.conftest import Recorder
from tests.fakes.llm_server import KEY, FakeLLM, call, calls, text

TEMPLATE = Path(__file__).resolve().parents[2] / "workspace_template"


def test_template_workspace_without_provider_needs_setup():
    workspace_yml = load_yaml((TEMPLATE / "workspace.yml").read_bytes(), where="workspace.yml")
    result = resolve_agent_config(workspace_yml, None, {}.get)
    assert isinstance(result, NeedsSetup) and "no LLM provider is configured" in result.reason


async def test_research_brief_runs_to_pending_approval_and_on(llm: FakeLLM, protocol: str,
                                                              tmp_path: Path, sink: Recorder):
    worker = TEMPLATE / "workers" / "research-brief"
    manifest = parse_manifest((worker / "worker.yml").read_bytes(), where="worker.yml",
                              folder="research-brief")
    workspace_yml = {"name": "default", "agent": {
        "provider": protocol, "model": "gpt-4o-mini", "base_url": llm.url(protocol),
        "api_key_secret": "LLM_KEY"}}
    config = resolve_agent_config(workspace_yml, manifest.model, {"LLM_KEY": KEY}.get)
    assert not isinstance(config, NeedsSetup)
    contexts = {name: tmp_path / "contexts" / name for name in manifest.contexts}
    for name, path in contexts.items():
        shutil.copytree(TEMPLATE / "contexts" / name, path)
    outputs = OutputSink(manifest.exec.outputs, tmp_path / "run")
    tools = agent_run_tools(mounts=contexts, outputs=outputs, sink=sink,
                            disabled=manifest.exec.disable_tools)
    user = first_message({"topic": "Onboarding"}, manifest.exec.outputs, contexts,
                         [t.name for t in tools])
    transcript = Transcript.start(provider=config.provider, model=config.model,
                                  system=(worker / "SKILL.md").read_text(), user=user)
    provider = make_provider(config, timeout=30)
    limits = Limits.of(manifest.limits, timeout_s=60)
    brief = "# Onboarding\n\n1. A\n2. B\n3. C\n\nSources: context/company/about.md\n"
    llm.script(calls(("list_files", {}), ("read_file", {"path": "context/company/about.md"})),
               calls(("write_output", {"name": "brief", "value": brief}),
                     ("request_approval", {"label": "Publish the brief", "preview": brief})))
    try:
        parked = await run_agent(provider, transcript, tools, sink, limits=limits,
                                 outputs=outputs, prices=PriceTable.load())
        assert parked.status == "pending_approval" and parked.cost_usd is not None
        stored = msgspec.json.encode(parked.transcript)
        resumed = msgspec.json.decode(stored, type=Transcript)
        resumed.decide(True)
        llm.script(call("finish_with_outputs", {"outputs": {}}), text("Published."))
        done = await run_agent(provider, resumed, tools, sink, limits=limits, outputs=outputs,
                               prices=PriceTable.load())
    finally:
        await provider.aclose()
    assert done.status == "completed" and done.outputs == {"brief": "out/brief.md"}
    assert (tmp_path / "run" / "out" / "brief.md").read_text() == brief
    first = llm.requests[0].body
    if protocol == "openai":
        system, opening = first["messages"][0]["content"], first["messages"][1]["content"]
    else:
        system, opening = first["system"], first["messages"][0]["content"][0]["text"]
    assert "Read the files under `context/company/`" in system
    assert '"topic": "Onboarding"' in opening and "context/company/" in opening
    assert done.usage.input_tokens == 36 and done.cost_usd is not None and done.cost_usd > 0

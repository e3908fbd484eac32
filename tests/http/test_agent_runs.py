"""Agent runs through the real API against the fake LLM server (both wire protocols): the template's
research-brief end to end, what a run records (logs.ndjson steps, tool calls, usage, cost, its
record on floom/runs), how provider errors, stalls, malformed and unknown tool calls end or
continue a run, cancel, and secrets kept out of everything committed."""

from __future__ import annotations

import json

import pytest

from floom_git.http.app import create_app
from tests.conftest import AUTH, git
from tests.fakes.llm_server import KEY, FakeLLM, Reply, call, calls, error, text
from tests.http.agent_helpers import configure, make_agent
from tests.http.test_runs import _sse, committed, trigger, wait_run

BRIEF = "# Onboarding\n\n1. A\n2. B\n3. C\n\nSources: context/company/about.md\n"


@pytest.fixture
def settings(settings):
    return settings.replace(agent_stall_seconds=1.0, sse_keepalive_seconds=0.2)


def finish(summary: str = "Widgets.") -> Reply:
    return call("finish_with_outputs", {"outputs": {"summary": summary}})


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_research_brief_runs_end_to_end_through_the_api(client, ws_path, llm: FakeLLM,
                                                              protocol):
    await configure(client.server.app, llm, protocol)
    llm.script(calls(("list_files", {}), ("read_file", {"path": "context/company/about.md"})),
               calls(("write_output", {"name": "brief", "value": BRIEF}),
                     ("finish_with_outputs", {"outputs": {}}), text="Here it is."))
    rid = (await trigger(client, "research-brief", {"topic": "Onboarding"}))["run_id"]
    run = await wait_run(client, rid)
    # The worker declares approvals.required: the finished brief waits for a person.
    assert run["status"] == "pending_approval", run
    assert run["outputs"] == {"brief": "out/brief.md"}
    assert [a["path"] for a in run["artifacts"]] == ["out/brief.md"]
    assert [(c["name"], c["error_code"]) for c in run["tool_calls"]] == [
        ("list_files", None), ("read_file", None), ("write_output", None),
        ("finish_with_outputs", None)]
    assert "small team" in run["tool_calls"][1]["result"]["content"]
    assert run["agent"] == {"provider": protocol, "model": "gpt-4o-mini", "input_tokens": 24,
                            "output_tokens": 14, "turns": 2}
    assert run["total_tokens"] == 38 and run["total_cost_usd"] > 0
    steps = [line["event"]["type"] for line in run["logs"] if line["event"]]
    assert steps == ["model_turn", "tool_call", "tool_call", "model_turn", "tool_call",
                     "tool_call", "agent_end"]
    first = llm.requests[0].body
    system = first["messages"][0]["content"] if protocol == "openai" else first["system"]
    assert system.startswith("# Research brief")

    record = await committed(ws_path, rid, "pending_approval")
    assert [c["name"] for c in record["tool_calls"]] == [c["name"] for c in run["tool_calls"]]
    assert record["cost_usd"] == run["total_cost_usd"]
    folder = record["_path"].rsplit("/", 1)[0]
    assert git(ws_path, "show", f"floom/runs:{folder}/artifacts/out/brief.md") == BRIEF
    logged = [json.loads(x) for x in git(ws_path, "show", f"floom/runs:{folder}/logs.ndjson")
              .splitlines()]
    assert [x["event"]["type"] for x in logged if x["event"]] == steps

    resp = await client.post(f"/api/runs/{rid}/approve")
    follow = (await resp.json())["follow_up_run_id"]
    llm.script(call("finish_with_outputs", {"outputs": {"brief": BRIEF}}))
    done = await wait_run(client, follow)
    assert done["status"] == "completed" and done["outputs"] == {"brief": "out/brief.md"}
    assert '\\"decision\\": \\"approved\\"' in json.dumps(llm.requests[-1].body["messages"])


async def test_agent_run_streams_each_step_as_it_happens(client, llm: FakeLLM):
    await configure(client.server.app, llm, "anthropic")
    await make_agent(client, "streamer")
    llm.script(call("log", {"message": "thinking"}, text="Let me see."),
               call("finish_with_outputs", {"outputs": {"summary": "done"}}, text="All done."))
    rid = (await trigger(client, "streamer", {"topic": "t"}))["run_id"]
    events = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/events")]
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "close" and events[-2]["status"] == "completed"
    steps = [e["event"]["type"] for e in events if e["type"] == "log" and "event" in e]
    assert steps == ["model_turn", "log", "tool_call", "model_turn", "tool_call", "agent_end"]
    parts = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/stream")]
    assert [p["name"] for p in parts if p["type"] == "tool-result"] == [
        "log",
        "finish_with_outputs",
    ]
    assert parts[-1] == {"type": "finish", "status": "completed", "error": None,
                         "error_code": None, "outputs": {"summary": "done"}}
    logs = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/logs/stream")]
    assert any(x.get("event", {}).get("type") == "agent_end" for x in logs)


async def test_agent_run_live_stream_shows_text_before_the_turn_ends(client, llm: FakeLLM):
    await configure(client.server.app, llm)
    await make_agent(client, "slow-talker")
    llm.script(text("The answer is coming", stall_after=2))
    rid = (await trigger(client, "slow-talker", {"topic": "t"}))["run_id"]
    frames = [f["data"] for f in await _sse(client, f"/api/runs/{rid}/events", stop_after=7)]
    assert [f["type"] for f in frames] == ["status", "status", "log", "log", "turn_start",
                                          "text_delta", "text_delta"]
    assert frames[5]["text"] + frames[6]["text"] == "The answer"
    run = await wait_run(client, rid)
    assert (run["status"], run["error_code"]) == ("failed", "provider_timeout")


CASES = {
    # (script, status, error_code, tool error codes)
    "provider_error": ([error(400)], "failed", "provider_error", []),
    "stalled_stream": (
        [text("Thinking about it", stall_after=1)],
        "failed",
        "provider_timeout",
        [],
    ),
    "malformed_call_continues": (
        [call("write_output", "{not json"), finish()],
        "completed",
        None,
        ["malformed_tool_call", None],
    ),
    "unknown_tool_continues": (
        [call("web_search", {"q": "x"}), finish()],
        "completed",
        None,
        ["unknown_tool", None],
    ),
    "unknown_tools_end_the_run": (
        [call("web_search", {})] * 4,
        "failed",
        "unknown_tool",
        ["unknown_tool"] * 4,
    ),
    "retry_after_429": ([error(429, retry_after="0"), finish()], "completed", None, [None]),
    "missing_outputs": ([text("Done, I think.")] * 4, "failed", "missing_outputs", []),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_agent_run_ends_or_continues_with_error_code(client, llm: FakeLLM, case):
    script, status, code, tool_codes = CASES[case]
    await configure(client.server.app, llm)
    await make_agent(client, "faulty")
    llm.script(*script)
    run = await wait_run(client, (await trigger(client, "faulty", {"topic": "t"}))["run_id"])
    assert (run["status"], run["error_code"]) == (status, code), run
    assert [c["error_code"] for c in run["tool_calls"]] == tool_codes
    if status == "failed":
        assert run["error"]
    if case == "retry_after_429":
        assert any((x["event"] or {}).get("type") == "provider_retry" for x in run["logs"])


@pytest.fixture
async def patient(aiohttp_client, settings):
    """A server whose stall watchdog outlasts the test: only cancel or the timeout end a run."""
    return await aiohttp_client(create_app(settings.replace(agent_stall_seconds=60)), headers=AUTH)


async def test_agent_run_cancel_stops_the_loop(patient, llm: FakeLLM):
    await configure(patient.server.app, llm)
    await make_agent(patient, "stuck")
    llm.script(text("I will take a long time", stall_after=1))
    rid = (await trigger(patient, "stuck", {"topic": "t"}))["run_id"]
    frames = await _sse(patient, f"/api/runs/{rid}/events", stop_after=6)
    assert frames[-1]["data"]["type"] == "text_delta"  # the model is talking
    resp = await patient.post(f"/api/runs/{rid}/cancel")
    assert (await resp.json())["status"] == "cancel_requested"
    run = await wait_run(patient, rid)
    assert (run["status"], run["error_code"]) == ("cancelled", "user_cancel")


async def test_agent_run_timeout_fails_with_timeout(patient, llm: FakeLLM):
    await configure(patient.server.app, llm)
    await make_agent(patient, "hasty", extra="limits: {timeout_seconds: 1}\n")
    llm.script(text("zzz", stall_after=0))
    run = await wait_run(patient, (await trigger(patient, "hasty", {"topic": "t"}))["run_id"])
    assert (run["status"], run["error_code"]) == ("failed", "timeout"), run


async def test_agent_run_redacts_the_provider_key_from_everything_committed(client, ws_path,
                                                                           llm: FakeLLM):
    await configure(client.server.app, llm)
    await make_agent(client, "leaky")
    llm.script(call("log", {"message": f"the key is {KEY}"}), finish(f"key={KEY}"))
    rid = (await trigger(client, "leaky", {"topic": "t"}))["run_id"]
    run = await wait_run(client, rid)
    assert run["outputs"] == {"summary": "key=<REDACTED:LLM_KEY>"}
    record = await committed(ws_path, rid, "completed")
    folder = record["_path"].rsplit("/", 1)[0]
    everything = git(ws_path, "show", f"floom/runs:{folder}/run.json") + git(
        ws_path, "show", f"floom/runs:{folder}/logs.ndjson")
    assert KEY not in everything and "<REDACTED:LLM_KEY>" in everything


async def test_agent_prices_file_prices_a_local_model(aiohttp_client, settings, llm: FakeLLM,
                                                       tmp_path):
    prices = tmp_path / "prices.yml"
    prices.write_text("models:\n  llama3.1: {input: 1000, output: 2000}\n")
    client = await aiohttp_client(create_app(settings.replace(agent_prices=prices)), headers=AUTH)
    await configure(client.server.app, llm, model="llama3.1")
    await make_agent(client, "local")
    llm.script(finish())
    run = await wait_run(client, (await trigger(client, "local", {"topic": "t"}))["run_id"])
    assert run["total_cost_usd"] == pytest.approx((12 * 1000 + 7 * 2000) / 1e6)
    prices.write_text("models:\n  llama3.1: {input: -1, output: 0}\n")
    with pytest.raises(
        ValueError, match=r"^FLOOM_AGENT_PRICES: .*prices.yml: Expected `float` >= 0"
    ):
        create_app(settings.replace(agent_prices=prices))


def test_agent_prices_setting_reads_the_environment(tmp_path):
    from floom_git import config

    found = config.from_env({"FLOOM_AGENT_PRICES": str(tmp_path / "p.yml"),
                             "FLOOM_AGENT_STALL_SECONDS": "30"})
    assert found.agent_prices == tmp_path / "p.yml" and found.agent_stall_seconds == 30.0

"""The effective agent configuration of a worker (or why it needs setup) and token prices."""

from __future__ import annotations

from pathlib import Path

import pytest

from floom_git.agents.config import AgentConfig, NeedsSetup, resolve_agent_config
from floom_git.agents.messages import Usage
from floom_git.agents.pricing import PriceTable
from floom_git.codec import load_yaml
from floom_git.errors import InvalidInput

SECRETS = {"OPENAI_API_KEY": "sk-test", "EMPTY": ""}
OPENAI = {"provider": "openai", "model": "gpt-4.1", "api_key_secret": "OPENAI_API_KEY"}


def resolve(workspace_yml, model=None):
    return resolve_agent_config(workspace_yml, model, SECRETS.get)


def test_resolve_agent_ready_with_worker_model_override():
    config = resolve({"name": "ws", "agent": OPENAI}, model="gpt-4.1-mini")
    assert config == AgentConfig("openai", "gpt-4.1-mini", None, "OPENAI_API_KEY", "sk-test")
    assert "sk-test" not in repr(config)
    assert resolve({"agent": OPENAI}).model == "gpt-4.1"


def test_resolve_agent_local_server_without_key():
    config = resolve({"agent": {"provider": "openai", "model": "llama3.1",
                                "base_url": "http://localhost:11434/v1"}})
    assert isinstance(config, AgentConfig) and config.base_url == "http://localhost:11434/v1"
    assert config.api_key_secret is None and config.api_key


@pytest.mark.parametrize("workspace_yml,reason", [
    (None, "no LLM provider is configured"),
    ({"name": "ws"}, "no LLM provider is configured"),
    ({"agent": {"provider": "gemini", "model": "m"}}, "at `$.agent.provider`"),
    ({"agent": {"provider": "openai", "model": "m", "api_key": "sk-x"}}, "unknown field `api_key`"),
    ({"agent": {"provider": "anthropic", "model": "claude-sonnet-4-5"}},
     "agent.api_key_secret is not set"),
    ({"agent": {**OPENAI, "api_key_secret": "MISSING"}},
     "the secret MISSING named by agent.api_key_secret in workspace.yml is not set"),
    ({"agent": {**OPENAI, "api_key_secret": "EMPTY"}}, "the secret EMPTY"),
    ({"agent": {**OPENAI, "api_key_secret": "lower"}}, "at `$.agent.api_key_secret`"),
])
def test_resolve_agent_needs_setup(workspace_yml, reason):
    result = resolve(workspace_yml)
    assert isinstance(result, NeedsSetup)
    assert reason in result.reason


def test_price_table_builtin_and_name_variants():
    prices = PriceTable.load()
    assert prices.cost("gpt-4o", Usage(input_tokens=1_000_000, output_tokens=100_000)) == 3.5
    assert prices.price("gpt-4o-2024-08-06") == prices.price("gpt-4o")
    assert prices.price("openai/gpt-4o-mini") == prices.price("gpt-4o-mini")
    assert prices.price("claude-sonnet-4-5-20250929") == prices.price("claude-sonnet-4-5")
    assert prices.cost("llama3.1", Usage(input_tokens=5)) is None


def test_price_table_operator_file_extends_and_overrides(tmp_path: Path):
    extra = tmp_path / "prices.yml"
    extra.write_text(
        "models:\n  llama3.1: {input: 0, output: 0}\n  gpt-4o: {input: 1, output: 2}\n"
    )
    prices = PriceTable.load(extra)
    assert prices.cost("llama3.1", Usage(input_tokens=10, output_tokens=10)) == 0.0
    assert prices.cost("gpt-4o", Usage(input_tokens=500_000, output_tokens=250_000)) == 1.0
    assert prices.price("gpt-4.1") is not None


@pytest.mark.parametrize("text,message", [
    ("models:\n  m: {input: -1, output: 0}\n", "Expected `float` >= 0"),
    ("models:\n  m: {input: 1}\n", "missing required field `output`"),
    ("models: [1]\n", "Expected `object`"),
    ("models: {m: {input: 1, output: 1, cached: 0}}\n", "unknown field `cached`"),
])
def test_price_table_bad_operator_file_names_the_problem(tmp_path: Path, text: str, message: str):
    extra = tmp_path / "prices.yml"
    extra.write_text(text)
    with pytest.raises(InvalidInput) as info:
        PriceTable.load(extra)
    assert str(extra) in info.value.message and message in info.value.message


def test_price_table_missing_operator_file(tmp_path: Path):
    with pytest.raises(InvalidInput, match="cannot read the price file"):
        PriceTable.load(tmp_path / "nope.yml")


def test_readme_agent_examples_resolve():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [line.split("'")[1] for line in readme.splitlines()
             if line.startswith("echo 'agent: {")]
    assert len(lines) == 3
    keys = {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2"}
    configs = [resolve_agent_config(load_yaml(line, where="README"), None, keys.get)
               for line in lines]
    assert [(c.provider, c.base_url) for c in configs if isinstance(c, AgentConfig)] == [
        ("openai", None), ("anthropic", None), ("openai", "http://localhost:11434/v1")]

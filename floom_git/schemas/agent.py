"""The `agent:` block of workspace.yml: which LLM provider, endpoint, model and key secret the
workspace's agent runs and chat use. A worker's `model:` (worker.yml) overrides the model only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from floom_git.codec import load_yaml
from floom_git.errors import InvalidInput
from floom_git.schemas.manifest import SecretName
from floom_git.schemas.patterns import explain, matching

ProviderName = Literal["openai", "anthropic"]
Model = Annotated[str, matching(
    r"^\S+$",
    "a model name without spaces (e.g. `gpt-4.1-mini`)", min_length=1, max_length=200)]
BaseUrl = Annotated[str, matching(
    r"^https?://[^\s/]+(/\S*)?$",
    "an http:// or https:// URL without spaces (e.g. `http://localhost:11434/v1`)",
    max_length=2000)]


class AgentSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """`provider: openai` speaks OpenAI chat completions at `base_url` (OpenAI itself when
    omitted; Azure, Ollama, vLLM, LM Studio, OpenRouter and LiteLLM are OpenAI-compatible);
    `provider: anthropic` speaks Anthropic messages. `api_key_secret` names a workspace secret;
    it may be left out only with a `base_url` (a local server that wants no key)."""

    provider: ProviderName
    model: Model
    api_key_secret: SecretName | None = None
    base_url: BaseUrl | None = None


def parse_agent_settings(workspace_yml: Any, *,
                         where: str = "workspace.yml") -> AgentSettings | None:
    """The `agent:` block of a parsed workspace.yml mapping; None when there is none.

    Raises InvalidInput naming `where` and the `$.agent...` path of the bad field.
    """
    if not isinstance(workspace_yml, dict) or workspace_yml.get("agent") is None:
        return None
    raw = workspace_yml["agent"]
    try:
        return msgspec.convert(raw, AgentSettings, strict=True)
    except msgspec.ValidationError as exc:
        text = explain(exc, AgentSettings)
        message = text.replace("`$", "`$.agent", 1) if "`$" in text else f"{text} - at `$.agent`"
        raise InvalidInput(f"{where}: {message}") from None


def check_workspace_yml(data: bytes, where: str = "workspace.yml") -> None:
    """Refuse a workspace.yml that does not parse or whose `agent:` block is invalid (pushes
    and API writes). Raises InvalidInput naming the file and the `$.agent...` path."""
    meta = load_yaml(data, where=where) if data.strip() else None
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput(f"{where}: expected a mapping at the top")
    parse_agent_settings(meta, where=where)

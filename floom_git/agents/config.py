"""The effective agent configuration of a worker (workspace.yml `agent:` with the worker's
`model:` on top and the key read from the workspace's secrets), or why it cannot run yet
(`needs_setup`); and the provider a configuration builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from floom_git.agents.provider import Provider
from floom_git.errors import InvalidInput
from floom_git.schemas.agent import ProviderName, parse_agent_settings

NO_KEY = "unused"  # the SDKs want a key even where a local server ignores it


@dataclass(frozen=True)
class AgentConfig:
    provider: ProviderName
    model: str
    base_url: str | None
    api_key_secret: str | None
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class NeedsSetup:
    """Why an agent worker cannot run yet; the text is meant for the worker's `error`."""

    reason: str


def resolve_agent_config(workspace_yml: Any, worker_model: str | None,
                         secret: Callable[[str], str | None]) -> AgentConfig | NeedsSetup:
    """`workspace_yml` is the parsed workspace.yml (a mapping, or None when the file is absent);
    `worker_model` the worker's `model:`; `secret(name)` a workspace secret's value or None."""
    try:
        settings = parse_agent_settings(workspace_yml)
    except InvalidInput as exc:
        return NeedsSetup(exc.message)
    if settings is None:
        return NeedsSetup("no LLM provider is configured: add `agent: {provider, model, "
                          "api_key_secret}` to workspace.yml")
    model = worker_model or settings.model
    name = settings.api_key_secret
    if name is None:
        if settings.base_url is None:
            return NeedsSetup("workspace.yml: agent.api_key_secret is not set (the "
                              f"{settings.provider} API needs a key)")
        return AgentConfig(settings.provider, model, settings.base_url, None, NO_KEY)
    key = secret(name)
    if not key:
        return NeedsSetup(f"the secret {name} named by agent.api_key_secret in workspace.yml "
                          f"is not set (POST /api/secrets/{name})")
    return AgentConfig(settings.provider, model, settings.base_url, name, key)


def make_provider(config: AgentConfig, *, timeout: float = 600.0) -> Provider:
    """The SDK-backed provider for `config`; `timeout` bounds one HTTP request (the loop's stall
    watchdog and run deadline are tighter)."""
    # Imported here: each SDK costs a noticeable part of a second to import.
    if config.provider == "anthropic":
        from floom_git.agents.anthropic_provider import AnthropicProvider
        return AnthropicProvider(model=config.model, api_key=config.api_key,
                                 base_url=config.base_url, timeout=timeout)
    from floom_git.agents.openai_provider import OpenAIProvider
    return OpenAIProvider(model=config.model, api_key=config.api_key, base_url=config.base_url,
                          timeout=timeout)

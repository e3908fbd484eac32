"""Fixtures of the agent tests: the fake LLM server on a loopback port and a real SDK-backed
provider pointed at it, once per wire protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from floom_git.agents.config import AgentConfig, make_provider
from floom_git.agents.events import Event
from floom_git.agents.provider import Provider
from tests.fakes.llm_server import KEY, FakeLLM


@pytest.fixture(params=["openai", "anthropic"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def provider(llm: FakeLLM, protocol: str) -> AsyncIterator[Provider]:
    config = AgentConfig(provider=protocol, model="fake-model", base_url=llm.url(protocol),  # type: ignore[arg-type]
                         api_key_secret="LLM_KEY", api_key=KEY)
    prov = make_provider(config, timeout=30)
    yield prov
    await prov.aclose()


class Recorder:
    """An event sink that keeps every event, as the run engine's log writer would see them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def sink() -> Recorder:
    return Recorder()

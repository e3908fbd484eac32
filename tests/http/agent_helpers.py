"""Agent workers and the workspace chat against the real server: the fake LLM server on a loopback
port, a workspace.yml `agent:` block pointing at it (committed like any write), the key as a
workspace secret, and agent workers created through the API."""

from __future__ import annotations

from aiohttp import web

from floom_git import paths
from floom_git.http.keys import MANAGER, SECRETS
from floom_git.services.actor import SYSTEM
from floom_git.storage.repo import Changeset, WorkspaceRepo
from tests.fakes.llm_server import KEY, FakeLLM

KEY_NAME = "LLM_KEY"

AGENT_YML = """schema_version: "0.3"
name: {name}
title: {name}
description: A test agent.
version: 1.0.0
exec:
  entry: SKILL.md
  runtime: skill
  inputs:
    - {{name: topic, type: string, required: true}}
{outputs}{extra}"""
SUMMARY = "  outputs:\n    - {name: summary, type: string, required: true}\n"


async def write_workspace_yml(app: web.Application, text: str, ws_id: str = "default") -> None:
    """Commit workspace.yml as an on-disk edit the watcher synced would (no API validates it)."""
    ws = app[MANAGER].get(ws_id)

    def build(repo: WorkspaceRepo) -> Changeset:
        return Changeset({paths.WORKSPACE_YML: text.encode()}, "workspace: agent settings")

    await ws.writer.write(build, SYSTEM.signature)


async def configure(
    app: web.Application,
    llm: FakeLLM,
    protocol: str = "openai",
    *,
    key: str | None = KEY,
    model: str = "gpt-4o-mini",
    ws_id: str = "default",
) -> None:
    """Point workspace `ws_id` at the fake LLM speaking `protocol`, key in secret LLM_KEY."""
    await write_workspace_yml(app, (
        f"name: {ws_id}\nagent: {{provider: {protocol}, model: {model}, "
        f"base_url: '{llm.url(protocol)}', api_key_secret: {KEY_NAME}}}\n"), ws_id)
    if key is not None:
        set_key(app, key, ws_id)


def set_key(app: web.Application, value: str, ws_id: str = "default") -> None:
    app[SECRETS].set(app[MANAGER].get(ws_id).uid, KEY_NAME, value, "test")


async def make_agent(client, name: str, skill: str = "Summarise the topic.", *,
                     outputs: str = SUMMARY, extra: str = "") -> None:
    body = {"worker_yml": AGENT_YML.format(name=name, outputs=outputs, extra=extra),
            "skill_md": skill}
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 201, await resp.text()

"""`--json` on every read prints one JSON document on stdout and nothing else there; the client
reads both the current response shapes and the ones the server is moving to."""

from __future__ import annotations

import json

import pytest

from floom_git.client.commands import outputs_of
from floom_git.client.commands.runs import parse_logs
from floom_git.client.commands.workspaces import rows_and_active
from tests.conftest import AUTH
from tests.http.test_runs import wait_run

READS = [
    ("whoami",), ("workspaces", "list"), ("workers", "list"), ("workers", "show", "word-count"),
    ("workers", "validate", "{folder}"), ("runs", "list"), ("runs", "show", "{run}"),
    ("runs", "logs", "{run}"), ("approvals", "list"), ("issues", "list"),
    ("issues", "show", "ISSUE-0001"),
]


@pytest.fixture
async def seeded(aiohttp_client, server, cli, tmp_path) -> dict[str, str]:
    api = await aiohttp_client(server, headers=AUTH)
    run_id = (await cli("run", "word-count", "-i", "text=a b c", "--no-wait")).out.strip()
    await wait_run(api, run_id)
    assert (await cli("issues", "create", "-t", "one")).code == 0
    assert (await cli("workers", "pull", "word-count", str(tmp_path / "wc"))).code == 0
    return {"run": run_id, "folder": str(tmp_path / "wc")}


async def test_every_read_prints_json_when_asked(cli, seeded):
    for command in READS:
        args = [part.format(**seeded) for part in command]
        result = await cli(*args, "--json")
        assert result.code == 0, (args, result.err)
        parsed = json.loads(result.out)  # the whole of stdout is one document
        assert parsed not in (None, ""), args
        human = await cli(*args)
        assert human.code == 0 and human.out != result.out, args


def test_workspaces_body_in_either_shape():
    rows = [{"id": "default", "active": False}, {"id": "team", "active": True}]
    assert rows_and_active(rows) == (rows, "team")
    assert rows_and_active({"workspaces": rows, "active_id": "default"}) == (rows, "default")
    assert rows_and_active({"workspaces": rows}) == (rows, "team")


def test_run_logs_body_in_either_shape():
    lines = [
        {"seq": 1, "level": "info", "message": "a"},
        {"seq": 2, "level": "error", "message": "b"},
    ]
    ndjson = "".join(json.dumps(x) + "\n" for x in lines).encode()
    assert parse_logs(ndjson) == lines
    assert parse_logs(json.dumps(lines).encode()) == lines
    assert parse_logs(b"") == [] and parse_logs(b"[]") == []


def test_run_outputs_under_either_name():
    assert outputs_of({"outputs": {"a": 1}}) == {"a": 1}
    assert outputs_of({"output": {"a": 1}, "outputs": None}) == {"a": 1}
    assert outputs_of({"output": {"a": 1}, "outputs": {"a": 1}}) == {"a": 1}
    assert outputs_of({}) is None

"""workspace-tools.yml and .floom/connections.yml through `git push`: validated like worker
manifests before any ref moves, the refusal naming the file and the problem."""

from __future__ import annotations

import aiohttp
import pytest

from tests.compat.test_git_http import gitc  # noqa: F401  (fixture)
from tests.conftest import AUTH, git

TOOLS_OK = "version: 1\ntools:\n  - {id: wc, name: count_words, worker_id: word-count}\n"
CONNECTIONS_OK = ("version: 1\nconnections:\n  - {id: conn_0123456789ab, label: docs, kind: mcp, "
                  "url: 'https://mcp.example.com/mcp'}\n")


async def api_get(server, path: str) -> tuple[int, object]:
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"http://127.0.0.1:{server.port}{path}") as resp:
            return resp.status, await resp.json()


async def test_push_valid_registries_is_live(gitc, server):  # noqa: F811
    repo = await gitc.clone()
    await gitc.commit(
        repo, {"workspace-tools.yml": TOOLS_OK, ".floom/connections.yml": CONNECTIONS_OK}
    )
    await gitc("push", "-q", "origin", "main", cwd=repo)
    status, tools = await api_get(server, "/api/mcp-tools")
    assert status == 200 and [t["name"] for t in tools] == ["count_words"]  # type: ignore[union-attr]
    status, conns = await api_get(server, "/api/connections")
    assert status == 200 and [c["label"] for c in conns] == ["docs"]  # type: ignore[union-attr]


REFUSALS = {
    "tool-unknown-worker": (
        {"workspace-tools.yml": TOOLS_OK.replace("word-count", "gone-away")},
        "workspace-tools.yml: tool 'count_words' names worker 'gone-away', which does not exist",
    ),
    "tool-bad-field": (
        {"workspace-tools.yml": "version: 1\ntools:\n  - {id: a, name: a, worker: word-count}\n"},
        "workspace-tools.yml: Object contains unknown field `worker` - at `$.tools[0]`",
    ),
    "tool-builtin-name": (
        {"workspace-tools.yml": TOOLS_OK.replace("count_words", "get_run")},
        "workspace-tools.yml: 'get_run' is the name of a built-in tool - at `$.tools[0]`",
    ),
    "connection-without-url": (
        {
            ".floom/connections.yml": CONNECTIONS_OK.replace(
                ", url: 'https://mcp.example.com/mcp'", ""
            )
        },
        ".floom/connections.yml: an mcp connection needs `url` and no `app` - at "
        "`$.connections[0]`",
    ),
    "connection-duplicate-label": (
        {
            ".floom/connections.yml": CONNECTIONS_OK
            + "  - {id: conn_ba9876543210, label: docs, kind: app, app: github}\n"
        },
        ".floom/connections.yml: duplicate connection label 'docs' - at `$.connections[1]`",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_push_invalid_registry_refused(gitc, server, case):  # noqa: F811
    files, message = REFUSALS[case]
    repo = await gitc.clone()
    before = gitc.server_main()
    await gitc.commit(repo, files)
    result = await gitc("push", "origin", "main", cwd=repo, check=False)
    assert result.code != 0 and f"remote:   - {message}" in result.err, result.err
    assert gitc.server_main() == before


async def test_push_deleting_a_worker_a_tool_runs_is_refused(gitc, server):  # noqa: F811
    repo = await gitc.clone()
    await gitc.commit(repo, {"workspace-tools.yml": TOOLS_OK})
    await gitc("push", "-q", "origin", "main", cwd=repo)
    await gitc.commit(repo, {"workers/word-count": None})
    result = await gitc("push", "origin", "main", cwd=repo, check=False)
    assert result.code != 0
    assert ("workspace-tools.yml: tool 'count_words' names worker 'word-count', which does not "
            "exist") in result.err
    assert "word-count" in git(gitc.ws_path, "ls-tree", "--name-only", "main", "workers/")

"""Connections to remote MCP servers against a real SDK-built server on a port: registration (one
commit, no credential in the repository), status, live test with latency, tools, secrets, SSRF
checks at registration and at connect time, delete."""

from __future__ import annotations

import socket

import pytest

from floom_git.http.app import create_app
from floom_git.services.egress import blocked_address
from tests.conftest import add_member, commit_count, git
from tests.remote_mcp_server import remote_server  # noqa: F401  (fixture)


@pytest.fixture
def settings(settings):
    return settings.replace(allow_private_mcp_urls=True)


@pytest.fixture
def admin(client) -> dict[str, str]:
    return add_member(client.server.app, "default", "admin", "root")[1]


async def register(client, headers, status: int = 201, **body) -> dict:
    resp = await client.post("/api/connections/mcp", json=body, headers=headers)
    data = await resp.json()
    assert resp.status == status, data
    return data


async def set_secret(client, headers, name: str, value: str) -> None:
    resp = await client.post(f"/api/secrets/{name}", json={"value": value}, headers=headers)
    assert resp.status == 200, await resp.text()


async def test_register_mcp_connection_commits_metadata_only(client, admin, ws_path, remote_server):  # noqa: F811
    await set_secret(client, admin, "DOCS_TOKEN", "s3cret-value")
    before = commit_count(ws_path)
    conn = await register(
        client,
        admin,
        label="docs",
        url=remote_server.url,
        auth={"type": "bearer", "secret": "DOCS_TOKEN"},
        allowed_tools=["add", "echo"],
    )
    assert conn["id"].startswith("conn_") and conn["status"] == "active"
    assert conn["auth"] == {"type": "bearer", "secret": "DOCS_TOKEN", "name": None}
    assert commit_count(ws_path) == before + 1
    assert git(ws_path, "log", "-1", "--format=%s").strip() == "connections: add docs (mcp)"
    text = git(ws_path, "show", "main:.floom/connections.yml")
    assert f"url: {remote_server.url}" in text and "secret: DOCS_TOKEN" in text
    assert "s3cret-value" not in text
    listed = await (await client.get("/api/connections")).json()
    assert [c["label"] for c in listed] == ["docs"]
    detail = await (await client.get(f"/api/connections/{conn['id']}")).json()
    assert detail == conn
    status = await (await client.get(f"/api/connections/{conn['id']}/status")).json()
    assert status["status"] == "active" and status["last_test"] is None


async def test_test_connection_live_initialize_and_tools(client, admin, remote_server):  # noqa: F811
    remote_server.tokens = {"tok-123"}
    await set_secret(client, admin, "DOCS_TOKEN", "tok-123")
    conn = await register(client, admin, label="docs", url=remote_server.url,
                          auth={"type": "bearer", "secret": "DOCS_TOKEN"}, allowed_tools=["add"])
    resp = await client.post(f"/api/connections/{conn['id']}/test")
    assert resp.status == 200
    result = await resp.json()
    assert result["ok"] is True and result["error"] is None and result["latency_ms"] >= 0
    assert result["server"]["name"] == "fixture-server" and result["server"]["version"] == "9.9.9"
    tools = {t["name"]: t for t in result["tools"]}
    assert set(tools) == {"add", "echo", "fail", "slow", "whoami"}
    assert tools["add"]["allowed"] is True and tools["echo"]["allowed"] is False
    assert tools["add"]["input_schema"]["required"] == ["a", "b"]
    assert "Bearer tok-123" in remote_server.seen_auth
    listed = await (await client.get(f"/api/connections/{conn['id']}/tools")).json()
    assert [t["name"] for t in listed] == ["add", "echo", "fail", "slow", "whoami"]
    status = await (await client.get(f"/api/connections/{conn['id']}/status")).json()
    assert status["last_test"]["ok"] is True and status["last_test"]["tool_count"] == 5


async def test_wrong_or_missing_secret_shows_in_status_and_test(client, admin, remote_server):  # noqa: F811
    remote_server.tokens = {"right"}
    conn = await register(client, admin, label="docs", url=remote_server.url,
                          auth={"type": "header", "name": "X-Api-Key", "secret": "DOCS_KEY"})
    assert conn["status"] == "missing_secret"
    assert conn["status_detail"] == "workspace secret DOCS_KEY is not set"
    result = await (await client.post(f"/api/connections/{conn['id']}/test")).json()
    assert result["ok"] is False
    assert result["error"] == "Connection docs: workspace secret DOCS_KEY is not set"
    await set_secret(client, admin, "DOCS_KEY", "wrong")
    result = await (await client.post(f"/api/connections/{conn['id']}/test")).json()
    assert result["ok"] is False
    assert result["error"] == "the server answered HTTP 401 (check the connection's secret)"
    resp = await client.get(f"/api/connections/{conn['id']}/tools")
    assert resp.status == 502
    assert "could not list its tools: the server answered HTTP 401" in (await resp.json())["detail"]
    secrets = await (await client.get("/api/connections/secrets")).json()
    assert secrets == [{"name": "DOCS_KEY", "status": "set", "connections": [conn["id"]],
                        "updated_at": secrets[0]["updated_at"]}]


async def test_unreachable_server_test_reports_error(client, admin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    conn = await register(client, admin, label="gone", url=f"http://127.0.0.1:{port}/mcp")
    result = await (await client.post(f"/api/connections/{conn['id']}/test")).json()
    assert result["ok"] is False and "ConnectError" in result["error"]


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"label": "x", "url": "ftp://example.com/mcp"}, "url: must be an http(s) URL with a host"),
        ({"label": "bad label", "url": "https://example.com/mcp"}, "- at `$.label`"),
        (
            {
                "label": "x",
                "url": "https://example.com/mcp",
                "auth": {"type": "header", "secret": "K"},
            },
            "Object missing required field `name` - at `$.auth`",
        ),
        (
            {
                "label": "x",
                "url": "https://example.com/mcp",
                "auth": {"type": "header", "name": "Host", "secret": "K"},
            },
            "header Host cannot be set",
        ),
        (
            {"label": "x", "url": "https://user:pw@example.com/mcp"},
            "credentials in the URL are not allowed",
        ),
        ({"label": "x", "url": "http://[abc]/mcp"}, "url: must be an http(s) URL with a host"),
        (
            {"label": "x", "url": "http://exa mple.com/mcp"},
            "url: must be an http(s) URL with a host",
        ),
        ({"label": "x", "url": "00000000"}, "url: must be an http(s) URL with a host"),
        (
            {
                "label": "x",
                "url": "https://example.com/mcp",
                "auth": {"type": "bearer", "secret": 5},
            },
            "Expected `str`, got `int` - at `$.auth.secret`",
        ),
    ],
)
async def test_register_bad_connection_is_400_without_commit(client, admin, ws_path, body, detail):
    before = commit_count(ws_path)
    data = await register(client, admin, 400, **body)
    assert detail in data["detail"]
    assert commit_count(ws_path) == before


async def test_register_ignores_unknown_fields(client, admin, ws_path, remote_server):  # noqa: F811
    conn = await register(client, admin, label="docs", url=remote_server.url, note="later",
                          auth={"type": "bearer", "secret": "DOCS_TOKEN", "scheme": "x"})
    assert conn["auth"] == {"type": "bearer", "secret": "DOCS_TOKEN", "name": None}
    stored = git(ws_path, "show", "main:.floom/connections.yml")
    assert "note" not in stored and "scheme" not in stored and "name:" not in stored
    conn = await register(client, admin, label="hdr", url=remote_server.url,
                          auth={"type": "header", "secret": "K", "name": "X-Api-Key", "x": 1})
    assert conn["auth"] == {"type": "header", "secret": "K", "name": "X-Api-Key"}


async def test_register_needs_admin_and_unique_label(client, admin, remote_server):  # noqa: F811
    _, member = add_member(client.server.app, "default", "member", "mo")
    await register(client, member, 403, label="docs", url=remote_server.url)
    await register(client, admin, label="docs", url=remote_server.url)
    dup = await register(client, admin, 409, label="docs", url=remote_server.url)
    assert dup["detail"] == "A connection labelled docs already exists"


async def test_delete_connection_commits_and_forgets(client, admin, ws_path, remote_server):  # noqa: F811
    conn = await register(client, admin, label="docs", url=remote_server.url)
    await client.post(f"/api/connections/{conn['id']}/test")
    before = commit_count(ws_path)
    resp = await client.delete(f"/api/connections/{conn['id']}", headers=admin)
    assert resp.status == 200 and (await resp.json())["deleted"] is True
    assert commit_count(ws_path) == before + 1
    assert git(ws_path, "log", "-1", "--format=%s").strip() == "connections: remove docs"
    for path in ("", "/status", "/activity", "/tools"):
        assert (await client.get(f"/api/connections/{conn['id']}{path}")).status == 404
    assert (await client.delete(f"/api/connections/{conn['id']}", headers=admin)).status == 404


async def test_secret_not_sent_after_the_url_changed_outside_the_api(
    client, admin, ws_path, remote_server  # noqa: F811
):
    """A push (here: an on-disk edit committed by reload) may point a connection elsewhere; its
    secret then stays home until an admin registers it again."""
    await set_secret(client, admin, "DOCS_TOKEN", "tok")
    conn = await register(client, admin, label="docs", url=remote_server.url,
                          auth={"type": "bearer", "secret": "DOCS_TOKEN"})
    path = ws_path / ".floom/connections.yml"
    path.write_text(path.read_text().replace(remote_server.url, remote_server.url + "?x=1"))
    assert (await client.post("/api/workers/reload")).status == 200
    result = await (await client.post(f"/api/connections/{conn['id']}/test")).json()
    assert result["ok"] is False and "changed outside the API" in result["error"]
    assert remote_server.seen_auth == []


async def test_invalid_connections_file_is_named(client, ws_path):
    (ws_path / ".floom").mkdir(exist_ok=True)
    (ws_path / ".floom/connections.yml").write_text("version: 1\nconnections: [{label: x}]\n")
    assert (await client.post("/api/workers/reload")).status == 200
    resp = await client.get("/api/connections")
    assert resp.status == 409
    assert (await resp.json())["detail"].startswith(
        ".floom/connections.yml: Object missing required field `id` - at `$.connections[0]`")


# -- SSRF ---------------------------------------------------------------------------------------
@pytest.fixture
async def strict(aiohttp_client, settings):
    """A server with the default policy: no private MCP targets."""
    app = create_app(settings.replace(allow_private_mcp_urls=False, shared_secret_role="admin"))
    return await aiohttp_client(app, headers={"x-floom-secret": settings.secret})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/mcp", "http://localhost/mcp", "http://10.0.0.5/mcp", "http://[::1]/mcp",
    "http://169.254.169.254/latest", "http://[::ffff:127.0.0.1]/mcp", "http://100.64.0.1/mcp",
    "http://0.0.0.0/mcp",
])
async def test_register_private_url_refused(strict, url):
    resp = await strict.post("/api/connections/mcp", json={"label": "x", "url": url})
    assert resp.status == 400
    assert (
        "loopback, private and link-local addresses are not allowed"
        in (await resp.json())["detail"]
    )


async def test_name_resolving_to_private_address_refused_at_connect(strict, remote_server):  # noqa: F811
    host = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not any(blocked_address(a) for a in addresses):
        pytest.skip(f"{host} resolves to public addresses only here")
    url = f"http://{host}:{remote_server.port}/mcp"
    resp = await strict.post("/api/connections/mcp", json={"label": "sneaky", "url": url})
    assert resp.status == 201, await resp.text()  # a name passes; its addresses are checked later
    result = await (await strict.post(f"/api/connections/{(await resp.json())['id']}/test")).json()
    assert result["ok"] is False
    assert f"{host} resolves to a non-public address" in result["error"]
    assert remote_server.seen_auth == []  # no request reached it

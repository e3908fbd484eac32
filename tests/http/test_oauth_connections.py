"""OAuth connections end to end against a local authorization server and a local MCP server:
POST /connections {app} -> authorization URL (PKCE) -> the provider redirects to the callback ->
tokens stored encrypted, pending -> active -> the refresh token renews an expiring access token
before the MCP server sees it."""

from __future__ import annotations

import json

import aiohttp
import pytest
from yarl import URL

from tests.conftest import add_member, commit_count, uid
from tests.fake_oauth_server import FakeAuthServer
from tests.remote_mcp_server import remote_server  # noqa: F401  (fixture)


@pytest.fixture
def settings(settings):
    return settings.replace(allow_private_mcp_urls=True)


@pytest.fixture
async def provider(aiohttp_server, settings, remote_server):  # noqa: F811
    """The authorization server, and an operator catalog entry `fakeapp` using it whose MCP
    server accepts exactly the access tokens it issued."""
    fake = FakeAuthServer()
    server = await aiohttp_server(fake.app())
    fake.base = f"http://127.0.0.1:{server.port}"
    remote_server.tokens = fake.issued
    settings.system_dir.mkdir(parents=True, exist_ok=True)
    (settings.system_dir / "integrations.yml").write_text(json.dumps({"version": 1, "apps": [{
        "slug": "fakeapp", "name": "Fake App", "category": "testing", "description": "A test app.",
        "auth": "oauth2", "mcp_url": remote_server.url,
        "oauth": {"authorize_url": f"{fake.base}/authorize", "token_url": f"{fake.base}/token",
                  "scopes": ["read", "write"], "client_id": fake.client_id,
                  "client_secret": fake.client_secret},
        "tools": [{"name": "add", "description": "Add."}]}]}))
    return fake


async def start(client) -> dict:
    resp = await client.post("/api/connections", json={"app": "fakeapp"})
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def sign_in(client, authorization_url: str) -> str:
    """What the browser does: open the URL; the provider redirects it to our callback. Returns
    that callback's path and query (for the test client)."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(authorization_url, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location = URL(resp.headers["Location"])
    assert str(location).startswith(str(client.make_url("/connections/callback")))
    return location.path_qs


async def browser(client, path: str) -> tuple[int, dict]:
    """A request to the same server the way a browser makes it: no API credential."""
    async with aiohttp.ClientSession() as session:
        async with session.get(client.make_url(path)) as resp:
            return resp.status, await resp.json()


async def test_oauth_flow_pending_to_active_then_refresh(client, provider, remote_server,  # noqa: F811
                                                         settings, ws_path):
    before = commit_count(ws_path)
    started = await start(client)
    assert started["status"] == "pending" and started["connection_id"].startswith("conn_")
    assert started["authorization_url"].startswith(f"{provider.base}/authorize?")
    assert "code_challenge_method=S256" in started["authorization_url"]
    assert "scope=read+write" in started["authorization_url"]
    assert commit_count(ws_path) == before + 1
    cid = started["connection_id"]
    status = await (await client.get(f"/api/connections/{cid}/status")).json()
    assert status["status"] == "pending"

    callback = await sign_in(client, started["authorization_url"])
    status_code, done = await browser(client, callback)
    assert status_code == 200, done
    assert done == {"connection_id": cid, "workspace_id": "default", "status": "active"}
    assert provider.grants == ["authorization_code"]
    status = await (await client.get(f"/api/connections/{cid}/status")).json()
    assert status["status"] == "active" and status["expires_at"]
    vault = (
        settings.system_dir / "connections" / f"{uid(client.server.app, 'default')}.state.json"
    ).read_text()
    assert not any(token in vault for token in provider.issued)  # sealed at rest

    result = await (await client.post(f"/api/connections/{cid}/test")).json()
    assert result["ok"] is True, result
    assert provider.grants == ["authorization_code", "refresh_token"]  # expiring: renewed first
    newest = [a for a in remote_server.seen_auth if a]
    assert len(set(newest)) == 1 and newest[0].removeprefix("Bearer ") in provider.issued
    result = await (await client.post(f"/api/connections/{cid}/test")).json()
    assert result["ok"] is True and provider.grants.count("refresh_token") == 1  # still fresh

    status_code, again = await browser(client, callback)
    assert status_code == 400 and "unknown, already used or expired sign-in" in again["detail"]


async def test_oauth_refused_sign_in_and_failed_refresh_show_as_error(client, provider):
    started = await start(client)
    callback = await sign_in(client, started["authorization_url"])
    state = callback.split("state=")[1]
    status_code, refused = await browser(client, f"/connections/callback?state={state}"
                                         "&error=access_denied&error_description=The+user+said+no")
    assert status_code == 400
    assert "the provider refused the sign-in: access_denied (The user said no)" in refused["detail"]
    status = await (await client.get(f"/api/connections/{started['connection_id']}/status")).json()
    assert status["status"] == "error"

    other = await client.post("/api/connections", json={"app": "fakeapp", "label": "second"})
    started = await other.json()
    assert (await browser(client, await sign_in(client, started["authorization_url"])))[0] == 200
    provider.refuse_refresh = True
    result = await (await client.post(f"/api/connections/{started['connection_id']}/test")).json()
    assert result["ok"] is False
    assert "could not be refreshed: invalid_grant: refresh token revoked" in result["error"]
    status = await (await client.get(f"/api/connections/{started['connection_id']}/status")).json()
    assert status["status"] == "error"


async def test_app_without_oauth_client_is_refused_before_any_commit(client, ws_path):
    before = commit_count(ws_path)
    resp = await client.post("/api/connections", json={"app": "github"})
    assert resp.status == 409
    assert (await resp.json())["detail"].startswith(
        "App github has no OAuth client configured: set the workspace secrets "
        "GITHUB_OAUTH_CLIENT_ID and GITHUB_OAUTH_CLIENT_SECRET")
    assert commit_count(ws_path) == before
    assert (await client.post("/api/connections", json={"app": "no-such-app"})).status == 404


async def test_app_with_workspace_client_secrets_starts_sign_in(client):
    _, admin = add_member(client.server.app, "default", "admin", "root")
    for name, value in (
        ("GITHUB_OAUTH_CLIENT_ID", "gh-client"),
        ("GITHUB_OAUTH_CLIENT_SECRET", "x"),
    ):
        assert (
            await client.post(f"/api/secrets/{name}", json={"value": value}, headers=admin)
        ).status == 200
    started = await (await client.post("/api/connections", json={"app": "github"})).json()
    url = started["authorization_url"]
    assert (
        url.startswith("https://github.com/login/oauth/authorize?") and "client_id=gh-client" in url
    )
    assert "redirect_uri=http%3A%2F%2F127.0.0.1" in url


async def test_app_without_sign_in_is_active_at_once(client):
    resp = await client.post("/api/connections", json={"app": "deepwiki", "from": "dashboard"})
    assert resp.status == 201  # an unknown field is ignored
    body = await resp.json()
    assert body["status"] == "active" and body["authorization_url"] is None
    detail = await (await client.get(f"/api/connections/{body['connection_id']}")).json()
    assert detail["url"] == "https://mcp.deepwiki.com/mcp" and detail["kind"] == "app"
    key = await (await client.post("/api/connections", json={"app": "stripe"})).json()
    assert key["status"] == "missing_secret"
    resp = await client.post("/api/connections", json={"app": "stripe", "scopes": "read"})
    assert resp.status == 400 and "- at `$.scopes`" in (await resp.json())["detail"]


async def test_callback_without_state_is_400(client):
    status_code, body = await browser(client, "/connections/callback?code=abc")
    assert status_code == 400 and body["detail"] == "state: missing from the provider's redirect"

"""The integrations catalog: the shipped apps paged, searched and filtered, their tools, operator
entries from system/integrations.yml (new apps and overrides), client secrets never shown."""

from __future__ import annotations

import pytest

from floom_git.services.integrations import BUILTIN_FILE, Catalog
from tests.conftest import add_member

SHIPPED = {"github", "google-drive", "gmail", "slack", "linear", "notion"}


def test_shipped_catalog_loads_with_real_endpoints(tmp_path):
    apps = Catalog(tmp_path).apps()
    assert SHIPPED <= set(apps) and len(apps) >= 12
    assert apps["github"].oauth.authorize_url == "https://github.com/login/oauth/authorize"
    assert apps["google-drive"].oauth.token_url == "https://oauth2.googleapis.com/token"
    assert apps["linear"].mcp_url == "https://mcp.linear.app/mcp"
    for app in apps.values():
        assert app.tools, app.slug
        assert app.oauth is not None or app.auth != "oauth2"
        assert app.oauth is None or app.oauth.client_secret is None  # never shipped
    assert BUILTIN_FILE.is_file()


async def test_catalog_pages_searches_and_filters(client):
    resp = await client.get("/api/integrations/catalog?limit=5")
    body = await resp.json()
    assert resp.status == 200 and len(body["items"]) == 5 and body["page"] == 1
    assert body["total"] == int(resp.headers["X-Total-Count"]) >= 12
    assert "developer" in body["categories"]
    second = await (await client.get("/api/integrations/catalog?limit=5&page=2")).json()
    assert not {a["slug"] for a in body["items"]} & {a["slug"] for a in second["items"]}
    found = await (await client.get("/api/integrations/catalog?search=GIT")).json()
    assert [a["slug"] for a in found["items"]] == ["deepwiki", "github"]  # "GitHub repositories"
    github = found["items"][1]
    assert github["auth"] == "oauth2" and github["scopes"] == ["repo", "read:user"]
    assert github["oauth_configured"] is False and github["source"] == "builtin"
    comms = await (await client.get("/api/integrations/catalog?category=communication")).json()
    assert {a["slug"] for a in comms["items"]} == {"gmail", "slack"}
    empty = await (await client.get("/api/integrations/catalog?search=zzzz")).json()
    assert empty["items"] == [] and empty["total"] == 0
    assert (await client.get("/api/integrations/catalog?page=0")).status == 400
    assert (await client.get("/api/integrations/catalog?limit=0")).status == 400
    capped = await (await client.get("/api/integrations/catalog?limit=5000")).json()
    assert capped["limit"] == 200  # a larger page size is capped, as every list's is


async def test_catalog_tools_of_an_app(client):
    tools = await (await client.get("/api/integrations/catalog/notion/tools")).json()
    assert "notion-search" in [t["name"] for t in tools]
    assert all(t["description"] for t in tools)
    resp = await client.get("/api/integrations/catalog/nope/tools")
    assert resp.status == 404
    assert (await resp.json())["detail"] == "App nope is not in the integrations catalog"


async def test_operator_entries_add_and_override_without_showing_secrets(client, settings):
    (settings.system_dir / "integrations.yml").write_text(
        "version: 1\napps:\n"
        "  - slug: github\n    oauth: {client_id: op-id, client_secret: op-secret}\n"
        "  - slug: internal-wiki\n    name: Internal wiki\n    category: knowledge\n"
        "    description: Our wiki.\n    auth: none\n    mcp_url: https://wiki.example.com/mcp\n"
        "    tools: [{name: search, description: Search the wiki.}]\n")
    body = await (await client.get("/api/integrations/catalog?limit=200")).json()
    apps = {a["slug"]: a for a in body["items"]}
    assert (
        apps["internal-wiki"]["source"] == "operator" and apps["internal-wiki"]["tool_count"] == 1
    )
    assert apps["github"]["oauth_configured"] is True and apps["github"]["source"] == "operator"
    assert apps["github"]["scopes"] == ["repo", "read:user"]  # merged over the shipped entry
    assert "op-secret" not in str(body) and "op-id" not in str(body)
    started = await (await client.post("/api/connections", json={"app": "github"})).json()
    assert "client_id=op-id" in started["authorization_url"]


@pytest.mark.parametrize("text, detail", [
    ("apps: 3\n", "system/integrations.yml: expected `apps:` as a list of mappings"),
    ("apps:\n  - {slug: x, name: X, category: c, description: d, auth: oauth2}\n",
     "integrations: app x uses oauth2 but has no `oauth` block"),
    ("apps:\n  - {slug: Bad Slug}\n", "- at `$.apps"),
])
async def test_invalid_operator_file_is_named(client, settings, text, detail):
    (settings.system_dir / "integrations.yml").write_text(text)
    resp = await client.get("/api/integrations/catalog")
    assert resp.status == 409 and detail in (await resp.json())["detail"]


async def test_catalog_sees_the_oauth_client_stored_in_the_workspace_secrets(client):
    """The catalog reads the workspace's secrets under its internal id (where they are stored),
    so an app whose client id and secret are set says so."""
    admin = add_member(client.server.app, "default", "admin", "root")[1]
    for name in ("GITHUB_OAUTH_CLIENT_ID", "GITHUB_OAUTH_CLIENT_SECRET"):
        resp = await client.post(f"/api/secrets/{name}", json={"value": "x"}, headers=admin)
        assert resp.status == 200
    found = await (await client.get("/api/integrations/catalog?search=github")).json()
    github = next(a for a in found["items"] if a["slug"] == "github")
    assert github["oauth_configured"] is True

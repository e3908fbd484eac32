"""Health, auth, error shape and the OpenAPI document."""

from __future__ import annotations

import platform
import re
import subprocess

import pytest

from floom_git.http.routes import ROUTES
from tests.conftest import SECRET


async def test_healthz_needs_no_auth(aiohttp_client, settings):
    from floom_git.http.app import create_app

    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/healthz")
    assert await resp.json() == {"status": "ok"}
    resp = await client.get("/api/workers")
    assert resp.status == 401
    assert "detail" in await resp.json()
    resp = await client.get("/api/workers", headers={"x-floom-secret": "wrong"})
    assert resp.status == 401
    resp = await client.get("/api/workers", headers={"Authorization": f"Bearer {SECRET}"})
    assert resp.status == 200


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.perm not in ("public", "git")],
    ids=lambda r: f"{r.method} {r.path}",
)
async def test_every_route_requires_auth(aiohttp_client, settings, route):
    from floom_git.http.app import create_app

    client = await aiohttp_client(create_app(settings))
    fill = {"id": "word-count", "name": "company", "sha": "abcdef1", "path": "about.md"}
    path = re.sub(
        r"\{(\w+)(?::[^}]*)?\}", lambda m: fill.get(m.group(1), "x1"), route.path
    ).replace("{ws}", "default")
    resp = await client.request(route.method, path)
    assert resp.status == 401
    assert set(await resp.json()) == {"detail", "code"}


async def test_unknown_workspace_is_404(client):
    resp = await client.get("/api/workers", headers={"x-workeros-workspace": "nope"})
    assert resp.status == 404
    assert await resp.json() == {"detail": "Workspace not found", "code": "not_found"}


async def test_unknown_route_and_method_are_json(client):
    resp = await client.get("/api/nothing-here")
    assert resp.status == 404 and "detail" in await resp.json()
    resp = await client.patch("/api/workers")
    assert resp.status == 405 and "detail" in await resp.json()


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=abc",
        "offset=-5",
        "limit=99999999999",
        "starred=maybe",
        "shape=weird",
        "status=bogus",
    ],
)
async def test_bad_list_params_are_400(client, query):
    resp = await client.get(f"/api/workers?{query}")
    assert resp.status == 400
    assert "detail" in await resp.json()


async def test_openapi_describes_every_route(client):
    spec = await (await client.get("/openapi.json")).json()
    for r in ROUTES:
        path = r.path.replace("{path:.+}", "{path}")
        assert r.method.lower() in spec["paths"][path], (r.method, path)
    assert "WorkerDetail" in spec["components"]["schemas"]
    page = await (
        await client.get("/docs")
    ).text()  # the dashboard's reference page (tests/dashboard)
    assert "/workers/{id}/rollback/{sha}" in page and "/openapi.json" in page


def _git_version() -> str:
    return subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]


async def test_system_info(client):
    body = await (await client.get("/api/system/info")).json()
    assert body["version"] and body["workspaces"] == 1
    assert body["environment"] == "production" and body["runner"] == "local"
    assert body["git_version"] == _git_version()
    assert body["python_version"] == platform.python_version() and body["started_at"].endswith("Z")

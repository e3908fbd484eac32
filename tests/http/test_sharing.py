"""Worker share links: public read-only views, revocation, expiry, import into a workspace."""

from __future__ import annotations

import json
import re

import pytest

from floom_git.http.keys import MANAGER
from tests.conftest import commit_count, git, uid, worker_body

SECOND = {"x-workeros-workspace": "second"}


async def _share(client, worker_id: str = "word-count") -> dict:
    resp = await client.post(f"/api/workers/{worker_id}/share-link")
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_share_link_stores_only_a_digest(client, settings):
    link = await _share(client)
    assert re.match(r"^fls_[A-Za-z0-9]{24}$", link["token"])
    assert link["url"].endswith(f"/s/{link['token']}") and link["url"].startswith("http://")
    stored = (settings.system_dir / "share-links.json").read_text()
    assert link["token"] not in stored
    row = next(iter(json.loads(stored).values()))
    # keyed by the internal id: a later workspace of the same name never matches it
    assert (row["workspace_id"], row["worker_id"]) == (uid(client.app, "default"), "word-count")


async def test_public_share_view_needs_no_credentials(client):
    link = await _share(client)
    for url in (f"/s/{link['token']}", f"/api/workers/public/word-count?token={link['token']}"):
        resp = await client.get(url, headers={"x-floom-secret": ""})
        assert resp.status == 200, url
        view = await resp.json()
        assert view["id"] == "word-count"
        assert "name: word-count" in view["manifest_yaml"]
        assert {f["path"] for f in view["files"]} == {"worker.yml", "run.py"}
        assert "workspace" not in json.dumps(sorted(view))


async def test_public_share_view_omits_secret_bearing_files(client, ws_path):
    (ws_path / "workers/word-count/deploy.key").write_text("PRIVATE")
    git(ws_path, "add", "-f", "workers/word-count/deploy.key")
    git(ws_path, "commit", "-qm", "sneak a key in")
    link = await _share(client)
    view = await (await client.get(f"/s/{link['token']}")).json()
    assert "deploy.key" not in {f["path"] for f in view["files"]}
    assert "PRIVATE" not in json.dumps(view)


@pytest.mark.parametrize("url", [
    "/s/fls_unknownunknownunknown1",
    "/s/not-a-token",
    "/api/workers/public/word-count?token=fls_unknownunknownunknown1",
    "/api/workers/public/word-count",
])
async def test_public_share_view_unknown_token_is_404(client, url):
    resp = await client.get(url)
    assert resp.status == 404
    assert (await resp.json())["detail"] == "Share link not found or revoked"


async def test_public_share_view_other_worker_id_is_404(client):
    link = await _share(client)
    resp = await client.get(f"/api/workers/public/research-brief?token={link['token']}")
    assert resp.status == 404


async def test_revoke_share_link_stops_it(client):
    first, second = await _share(client), await _share(client)
    resp = await client.delete("/api/workers/word-count/share-link")
    assert await resp.json() == {"revoked": True, "count": 2}
    for link in (first, second):
        assert (await client.get(f"/s/{link['token']}")).status == 404
    resp = await client.post("/api/workers/import-from-share", json={"token": first["token"]})
    assert resp.status == 404
    assert await (await client.delete("/api/workers/word-count/share-link")).json() == {
        "revoked": False, "count": 0}


async def test_expired_share_link_is_404(client, settings):
    link = await _share(client)
    path = settings.system_dir / "share-links.json"
    data = json.loads(path.read_text())
    for row in data.values():
        row["expires_at"] = "2000-01-01T00:00:00+00:00"
    path.write_text(json.dumps(data))
    assert (await client.get(f"/s/{link['token']}")).status == 404


async def test_create_share_link_with_expiry(client):
    resp = await client.post("/api/workers/word-count/share-link", json={"expires_in_days": 7})
    link = await resp.json()
    assert resp.status == 201 and link["expires_at"]
    assert (await client.get(f"/s/{link['token']}")).status == 200


@pytest.mark.parametrize("worker_id,body,status", [
    ("no-such-worker", None, 404),
    ("word-count", {"expires_in_days": 0}, 400),
    ("word-count", {"expires_in_days": "soon"}, 400),
])
async def test_create_share_link_bad_input(client, worker_id, body, status):
    resp = await client.post(f"/api/workers/{worker_id}/share-link", json=body)
    assert resp.status == status


async def test_import_from_share_into_same_workspace_suffixes_id(client, ws_path):
    link = await _share(client)
    before = commit_count(ws_path)
    for expected in ("word-count-2", "word-count-3"):
        resp = await client.post("/api/workers/import-from-share", json={"token": link["token"]})
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        assert (body["worker_id"], body["source_worker_id"]) == (expected, "word-count")
        assert (
            git(ws_path, "log", "-1", "--format=%s").strip()
            == f"worker: import {expected} from share"
        )
    assert commit_count(ws_path) == before + 2
    manifest = (ws_path / "workers/word-count-3/worker.yml").read_text()
    assert "name: word-count-3\n" in manifest
    original = (ws_path / "workers/word-count/worker.yml").read_text()
    assert manifest == original.replace("name: word-count\n", "name: word-count-3\n")
    detail = await (await client.get("/api/workers/word-count-3")).json()
    assert detail["status"] == "ready"
    assert git(ws_path, "status", "--porcelain") == ""


async def test_import_from_share_into_other_workspace_keeps_free_id(client, settings):
    await client.app[MANAGER].create("second")
    assert (await client.post("/api/workers", json=worker_body())).status == 201
    link = await _share(client, "hello-world")
    resp = await client.post(
        "/api/workers/import-from-share", json={"token": link["token"]}, headers=SECOND
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["worker_id"] == "hello-world"
    resp = await client.get("/api/workers/hello-world", headers=SECOND)
    assert resp.status == 200
    second = settings.workspaces_dir / "second"
    assert git(second, "log", "-1", "--format=%s|%an").strip() == (
        "worker: import hello-world from share|local-user")


@pytest.mark.parametrize("body", [{"token": "fls_nothing"}, {"token": ""}, {}])
async def test_import_from_share_bad_token_changes_nothing(client, ws_path, body):
    before = commit_count(ws_path)
    resp = await client.post("/api/workers/import-from-share", json=body)
    assert resp.status in (400, 404)
    assert commit_count(ws_path) == before

"""Context packs API."""

from __future__ import annotations

import io

import pytest
from aiohttp import FormData

from tests.conftest import commit_count, git


async def test_list_and_detail_template_context(client):
    items = await (await client.get("/api/contexts")).json()
    assert [c["name"] for c in items] == ["company"]
    detail = await (await client.get("/api/contexts/company")).json()
    assert {f["path"] for f in detail["files"]} == {"about.md", "context.yml"}
    assert detail["metadata"]["visibility"] == "workspace"


async def test_create_put_read_delete_context_file(client, ws_path):
    resp = await client.post("/api/contexts/notes", json={"description": "Team notes"})
    assert resp.status == 201
    assert (await client.post("/api/contexts/notes")).status == 409
    resp = await client.put("/api/contexts/notes/files/a/b.md", data=b"# hi\n",
                            headers={"Content-Type": "text/markdown"})
    body = await resp.json()
    assert resp.status == 200 and body["changed"] is True
    assert git(ws_path, "log", "-1", "--format=%s").strip() == "context notes: update a/b.md"
    resp = await client.get("/api/contexts/notes/files/a/b.md")
    assert await resp.read() == b"# hi\n"
    assert resp.headers["Content-Type"].startswith("text/markdown")
    before = commit_count(ws_path)
    resp = await client.put("/api/contexts/notes/files/a/b.md", data=b"# hi\n")
    assert (await resp.json())["changed"] is False
    assert commit_count(ws_path) == before
    resp = await client.put("/api/contexts/notes/files/data.json", json={"content": "{}"})
    assert (await resp.json())["size"] == 2
    resp = await client.delete("/api/contexts/notes/files/a/b.md")
    assert resp.status == 200
    assert (await client.get("/api/contexts/notes/files/a/b.md")).status == 404
    assert git(ws_path, "status", "--porcelain") == ""
    assert (await client.delete("/api/contexts/notes")).status == 200
    assert (await client.get("/api/contexts/notes")).status == 404


async def test_binary_file_round_trip(client):
    blob = bytes(range(256)) * 4
    await client.put("/api/contexts/company/files/logo.png", data=blob,
                     headers={"Content-Type": "application/octet-stream"})
    resp = await client.get("/api/contexts/company/files/logo.png")
    assert resp.headers["Content-Type"] == "image/png"
    assert await resp.read() == blob


@pytest.mark.parametrize("path", [
    "..%2F..%2Fworkspace.md", "%2E%2E/x", "a/%2E%2E/%2E%2E/b", ".git/config", "a/.git/hooks/x",
    "a%5Cb", "%00x", "a//b", ".%2E/x",
])
async def test_put_context_file_bad_path_is_400(client, ws_path, path):
    before = commit_count(ws_path)
    resp = await client.put(f"/api/contexts/company/files/{path}", data=b"x")
    assert resp.status in (400, 404), path
    assert "detail" in await resp.json()
    assert commit_count(ws_path) == before
    assert git(ws_path, "status", "--porcelain") == ""


async def test_secret_bearing_file_is_refused(client, ws_path):
    before = commit_count(ws_path)
    resp = await client.put("/api/contexts/company/files/.env", data=b"A=1")
    assert resp.status == 400
    assert commit_count(ws_path) == before


async def test_oversized_body_is_413(client, settings, ws_path):
    before = commit_count(ws_path)
    resp = await client.put(
        "/api/contexts/company/files/big.bin", data=io.BytesIO(b"x" * (settings.max_file_bytes + 1))
    )
    assert resp.status == 413
    assert commit_count(ws_path) == before


async def test_multipart_upload_one_commit(client, ws_path):
    before = commit_count(ws_path)
    form = FormData()
    form.add_field("path_prefix", "docs")
    form.add_field("file", b"one", filename="one.txt")
    form.add_field("file", b"two", filename="sub/two.txt")
    resp = await client.post("/api/contexts/company/upload", data=form)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["uploaded"] == ["docs/one.txt", "docs/sub/two.txt"]
    assert commit_count(ws_path) == before + 1
    assert (ws_path / "contexts/company/docs/sub/two.txt").read_bytes() == b"two"


async def test_multipart_upload_traversal_is_400(client, ws_path):
    before = commit_count(ws_path)
    form = FormData()
    form.add_field("file", b"ok", filename="fine.txt")
    form.add_field("file", b"evil", filename="../../../etc/passwd")
    resp = await client.post("/api/contexts/company/upload", data=form)
    assert resp.status == 400
    assert commit_count(ws_path) == before
    assert not (ws_path / "contexts/company/fine.txt").exists()


async def test_context_versions_rollback_and_visibility(client, ws_path):
    await client.put("/api/contexts/company/files/about.md", data=b"v2")
    await client.put("/api/contexts/company/files/new.md", data=b"new")
    versions = await (await client.get("/api/contexts/company/versions")).json()
    assert len(versions) == 3
    first = versions[-1]["sha"]
    resp = await client.post(f"/api/contexts/company/rollback/{first}")
    assert resp.status == 200
    assert (ws_path / "contexts/company/about.md").read_text().startswith("# About us")
    assert not (ws_path / "contexts/company/new.md").exists()
    resp = await client.put("/api/contexts/company/visibility", json={"visibility": "private"})
    assert (await resp.json())["visibility"] == "private"
    assert git(ws_path, "status", "--porcelain") == ""


async def test_workspace_instructions_versions_rollback_changelog(client, ws_path):
    resp = await client.get("/api/workspace")
    assert resp.headers["Content-Type"].startswith("text/markdown")
    original = await resp.text()
    resp = await client.put("/api/workspace", data="# New rules\n")
    assert (await resp.json())["sha"]
    assert (await client.put("/api/workspace", data="  ")).status == 400
    versions = await (await client.get("/api/workspace/versions")).json()
    assert [v["message"] for v in versions][0] == "workspace: update instructions"
    old = await (await client.get(f"/api/workspace/versions/{versions[-1]['sha']}")).json()
    assert old["content"] == original
    await client.post(f"/api/workspace/rollback/{versions[-1]['sha']}")
    assert (ws_path / "workspace.md").read_text() == original
    await client.put("/api/contexts/company/files/x.md", data=b"x")
    log = await (await client.get("/api/workspace/changelog")).json()
    assert log[0]["asset_type"] == "context" and log[0]["asset_id"] == "company"
    assert log[1]["asset_type"] == "workspace_instructions"
    kinds = {e["asset_type"] for e in log}
    assert kinds == {"worker", "context", "workspace_instructions"}
    only = await (await client.get("/api/workspace/changelog?asset_types=worker")).json()
    assert {e["asset_type"] for e in only} == {"worker"}

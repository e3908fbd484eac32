"""Workspace issues API against the real server and repository: files, commits, concurrency."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.conftest import commit_count, git

ISSUES = ".floom/issues"


async def _create(client, **body) -> dict:
    body.setdefault("title", "gmail worker keeps failing")
    resp = await client.post("/api/workspace/issues", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_issue_writes_reference_file_and_commits(client, ws_path):
    before = commit_count(ws_path)
    issue = await _create(
        client,
        body="  It fails.\n\n",
        asset_type="worker",
        asset_id="word-count",
        source="run_failure",
        labels=[" worker", "needs-attention", "", "worker"],
    )
    assert issue["id"] == "ISSUE-0001"
    assert issue["labels"] == ["worker", "needs-attention"]
    assert issue["created_by"] == "local-user" and issue["comment_count"] == 0
    assert commit_count(ws_path) == before + 1
    assert git(ws_path, "log", "-1", "--format=%s|%an").strip() == (
        "issues: create ISSUE-0001 gmail worker keeps failing|local-user")
    assert git(ws_path, "status", "--porcelain") == ""
    stamp = issue["created_at"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$", stamp)
    expected = (
        "---\nid: ISSUE-0001\nstatus: open\ntitle: gmail worker keeps failing\nasset_type: worker\n"
        "asset_id: word-count\nsource: run_failure\nlabels:\n- worker\n- needs-attention\n"
        f"created_by: local-user\ncreated_at: '{stamp}'\nupdated_at: '{stamp}'\n---\n\nIt fails.\n"
    )
    assert (ws_path / ISSUES / "ISSUE-0001.md").read_text() == expected


async def test_create_issue_without_labels_writes_empty_list(client, ws_path):
    await _create(client, title="plain")
    text = (ws_path / ISSUES / "ISSUE-0001.md").read_text()
    assert "labels: []\n" in text and "asset_type" not in text and text.endswith("---\n\n\n")


async def test_list_issues_filters(client):
    await _create(client, title="a", labels=["bug"], asset_type="worker", asset_id="word-count")
    await _create(client, title="b", labels=["idea"])
    await _create(client, title="c", labels=["bug"], asset_type="context", asset_id="company")
    resp = await client.patch("/api/workspace/issues/ISSUE-0003", json={"status": "closed"})
    assert resp.status == 200

    async def titles(query: str) -> list[str]:
        resp = await client.get(f"/api/workspace/issues{query}")
        assert resp.status == 200, await resp.text()
        return [i["title"] for i in (await resp.json())["issues"]]

    assert await titles("") == ["a", "b", "c"]
    assert await titles("?status=open") == ["a", "b"]
    assert await titles("?status=closed") == ["c"]
    assert await titles("?label=bug") == ["a", "c"]
    assert await titles("?asset_type=worker") == ["a"]
    assert await titles("?asset_type=context&asset_id=company") == ["c"]
    assert await titles("?asset_id=nothing") == []
    assert await titles("?limit=1&offset=1") == ["b"]


async def test_get_issue_includes_comments(client):
    await _create(client)
    resp = await client.post(
        "/api/workspace/issues/ISSUE-0001/comments", json={"body": " looking "}
    )
    assert resp.status == 201
    comment = await resp.json()
    assert re.match(r"^cmt_[0-9a-f]{16}$", comment["id"]) and comment["body"] == "looking"
    detail = await (await client.get("/v1/workspace/issues/ISSUE-0001")).json()
    assert detail["comment_count"] == 1 and detail["comments"] == [comment]
    assert detail["updated_at"] == comment["created_at"]


async def test_comment_issue_appends_ndjson_and_commits_both_files(client, ws_path):
    await _create(client)
    for text in ("first", "zweite — ünïcode"):
        resp = await client.post("/api/workspace/issues/ISSUE-0001/comments", json={"body": text})
        assert resp.status == 201
    assert git(ws_path, "log", "-1", "--format=%s").strip() == "issues: comment on ISSUE-0001"
    changed = git(ws_path, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(changed) == [f"{ISSUES}/ISSUE-0001.comments.ndjson", f"{ISSUES}/ISSUE-0001.md"]
    lines = (ws_path / ISSUES / "ISSUE-0001.comments.ndjson").read_text("utf-8").splitlines()
    assert [json.loads(line)["body"] for line in lines] == ["first", "zweite — ünïcode"]
    assert list(json.loads(lines[0])) == ["id", "body", "created_by", "created_at"]
    assert '"body": "zweite — ünïcode"' in lines[1]  # json.dumps defaults, unicode kept


async def test_update_issue_fields_and_binding(client, ws_path):
    await _create(client, asset_type="worker", asset_id="word-count")
    resp = await client.patch("/api/workspace/issues/ISSUE-0001", json={
        "title": "renamed", "body": "new body", "status": "closed", "labels": ["x"]})
    assert resp.status == 200, await resp.text()
    issue = await resp.json()
    assert (issue["title"], issue["body"], issue["status"], issue["labels"]) == (
        "renamed", "new body", "closed", ["x"])
    assert git(ws_path, "log", "-1", "--format=%s").strip() == "issues: update ISSUE-0001"
    resp = await client.patch("/api/workspace/issues/ISSUE-0001", json={"clear_asset": True})
    issue = await resp.json()
    assert issue["asset_type"] is None and issue["asset_id"] is None
    assert "asset_" not in (ws_path / ISSUES / "ISSUE-0001.md").read_text()
    resp = await client.patch("/api/workspace/issues/ISSUE-0001",
                              json={"asset_type": "run", "asset_id": "run_abc"})
    assert (await resp.json())["asset_type"] == "run"


async def test_update_issue_without_change_makes_no_commit(client, ws_path):
    issue = await _create(client, labels=["a"])
    before = commit_count(ws_path)
    resp = await client.patch("/api/workspace/issues/ISSUE-0001",
                              json={"status": "open", "labels": ["a", " a"]})
    assert resp.status == 200
    assert (await resp.json())["updated_at"] == issue["updated_at"]
    assert commit_count(ws_path) == before


async def test_update_issue_preserves_unknown_front_matter_keys(client, ws_path):
    await _create(client)
    path = ws_path / ISSUES / "ISSUE-0001.md"
    text = path.read_text().replace("---\n\n", "custom_key: kept\nnested:\n  a: 1\n---\n\n", 1)
    path.write_text(text)
    git(ws_path, "commit", "-qam", "hand edit")
    resp = await client.patch("/api/workspace/issues/ISSUE-0001", json={"status": "closed"})
    assert resp.status == 200
    await client.post("/api/workspace/issues/ISSUE-0001/comments", json={"body": "c"})
    after = path.read_text()
    assert "status: closed\n" in after
    assert "custom_key: kept\nnested:\n  a: 1\n---\n" in after


async def test_create_issues_concurrently_get_distinct_ids(client, ws_path):
    before = commit_count(ws_path)
    results = await asyncio.gather(*(_create(client, title=f"t{i}") for i in range(12)))
    assert sorted(r["id"] for r in results) == [f"ISSUE-{i:04d}" for i in range(1, 13)]
    assert commit_count(ws_path) == before + 12
    listed = await (await client.get("/api/workspace/issues")).json()
    assert len(listed["issues"]) == 12


async def test_close_and_comment_concurrently_ends_closed_with_one_comment(client):
    await _create(client)
    for _ in range(3):
        close = client.patch("/api/workspace/issues/ISSUE-0001", json={"status": "closed"})
        note = client.post("/api/workspace/issues/ISSUE-0001/comments", json={"body": "why"})
        r1, r2 = await asyncio.gather(close, note)
        assert (r1.status, r2.status) == (200, 201)
        detail = await (await client.get("/api/workspace/issues/ISSUE-0001")).json()
        assert detail["status"] == "closed"
        await client.patch("/api/workspace/issues/ISSUE-0001", json={"status": "open"})
    assert detail["comment_count"] == 3


async def test_create_issue_after_on_disk_issue_skips_its_id(client, ws_path):
    folder = ws_path / ISSUES
    folder.mkdir(parents=True)
    (folder / "ISSUE-0007.md").write_text("---\nid: ISSUE-0007\ntitle: from disk\n---\n\nx\n")
    issue = await _create(client)
    assert issue["id"] == "ISSUE-0008"


async def test_list_issues_reports_unparseable_file(client, ws_path):
    await _create(client, title="good")
    (ws_path / ISSUES / "ISSUE-0002.md").write_text(
        "---\nid: ISSUE-0002\nstatus: done\ntitle: x\n---\n"
    )
    resp = await client.get("/api/workspace/issues")
    assert resp.status == 200
    body = await resp.json()
    assert [i["id"] for i in body["issues"]] == ["ISSUE-0001"]
    assert body["errors"][0]["path"] == f"{ISSUES}/ISSUE-0002.md"
    assert "$.status" in body["errors"][0]["error"]
    resp = await client.get("/api/workspace/issues/ISSUE-0002")
    assert resp.status == 422 and "ISSUE-0002.md" in (await resp.json())["detail"]


async def test_get_issue_shows_on_disk_edit(client, ws_path):
    await _create(client)
    path = ws_path / ISSUES / "ISSUE-0001.md"
    path.write_text(path.read_text().replace("title: gmail worker keeps failing", "title: edited"))
    detail = await (await client.get("/api/workspace/issues/ISSUE-0001")).json()
    assert detail["title"] == "edited"


@pytest.mark.parametrize("method,url,body,status,detail", [
    ("GET", "/api/workspace/issues/ISSUE-1", None, 400, "Invalid issue id"),
    ("GET", "/api/workspace/issues/nope", None, 400, "Invalid issue id"),
    ("GET", "/api/workspace/issues/ISSUE-0099", None, 404, "Issue not found: ISSUE-0099"),
    ("PATCH", "/api/workspace/issues/ISSUE-0099", {"status": "closed"}, 404,
     "Issue not found: ISSUE-0099"),
    ("PATCH", "/api/workspace/issues/bad", {"status": "closed"}, 400, "Invalid issue id"),
    ("POST", "/api/workspace/issues/ISSUE-0099/comments", {"body": "x"}, 404, "Issue not found"),
    ("POST", "/api/workspace/issues", {}, 400, "title"),
    ("POST", "/api/workspace/issues", {"title": "   "}, 400, "title"),
    ("POST", "/api/workspace/issues", {"title": "a\nb"}, 400, "title"),
    ("POST", "/api/workspace/issues", {"title": "t", "asset_type": "worker"}, 400, "together"),
    ("POST", "/api/workspace/issues", {"title": "t", "asset_id": "x"}, 400, "together"),
    ("POST", "/api/workspace/issues", {"title": "t", "asset_type": "planet", "asset_id": "x"}, 400,
     "asset_type"),
    ("POST", "/api/workspace/issues", {"title": "t", "labels": "bug"}, 400, "$.labels"),
    ("POST", "/api/workspace/issues", {"title": "t", "labels": "red"}, 400, "$.labels"),
    ("PATCH", "/api/workspace/issues/ISSUE-0001", {"status": "done"}, 400, "status"),
    ("PATCH", "/api/workspace/issues/ISSUE-0001", {"title": ""}, 400, "title"),
    ("PATCH", "/api/workspace/issues/ISSUE-0001", {"asset_type": "worker"}, 400, "together"),
    ("PATCH", "/api/workspace/issues/ISSUE-0001",
     {"clear_asset": True, "asset_type": "worker", "asset_id": "x"}, 400, "clear_asset"),
    ("POST", "/api/workspace/issues/ISSUE-0001/comments", {"body": "  "}, 400, "body"),
    ("POST", "/api/workspace/issues/ISSUE-0001/comments", {}, 400, "body"),
    ("GET", "/api/workspace/issues?status=pending", None, 400, "status"),
])
async def test_bad_issue_input_is_refused_without_commit(client, ws_path, method, url, body, status,
                                                         detail):
    await _create(client)
    before = commit_count(ws_path)
    snapshot = (ws_path / ISSUES / "ISSUE-0001.md").read_bytes()
    resp = await client.request(method, url, json=body) if body is not None else \
        await client.request(method, url)
    assert resp.status == status, await resp.text()
    assert detail in (await resp.json())["detail"]
    assert commit_count(ws_path) == before
    assert (ws_path / ISSUES / "ISSUE-0001.md").read_bytes() == snapshot
    assert sorted(p.name for p in (ws_path / ISSUES).iterdir()) == ["ISSUE-0001.md"]


async def test_issue_routes_are_documented(client):
    spec = await (await client.get("/openapi.json")).json()
    assert {"get", "post"} <= set(spec["paths"]["/workspace/issues"])
    assert {"get", "patch"} <= set(spec["paths"]["/workspace/issues/{id}"])
    assert "post" in spec["paths"]["/workspace/issues/{id}/comments"]

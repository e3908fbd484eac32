"""Run feedback against a real run: stored with the run on floom/runs, never an issue by itself,
and turned into a run-bound issue on request, deduplicated by feedback_id."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import commit_count, git

DEADLINE = 20.0


@pytest.fixture
async def run_id(client) -> str:
    resp = await client.post("/api/workers/word-count/runs", json={"inputs": {"text": "a b c"}})
    assert resp.status == 200, await resp.text()
    rid = (await resp.json())["run_id"]
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while True:
        body = await (await client.get(f"/api/runs/{rid}")).json()
        if body["status"] in ("completed", "failed"):
            return rid
        assert loop.time() < end, f"run stayed {body['status']}"
        await asyncio.sleep(0.05)


async def _feedback(client, run_id: str, **body) -> dict:
    body.setdefault("content", "The count looks off by one.")
    resp = await client.post(f"/api/runs/{run_id}/feedback", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_add_feedback_is_stored_with_run_and_makes_no_issue(client, ws_path, run_id):
    before = commit_count(ws_path)
    item = await _feedback(client, run_id, rating="down")
    assert item["id"].startswith("fdbk_") and item["worker_id"] == "word-count"
    assert (
        item["rating"] == "down" and item["author_id"] == "local-user" and item["issue_id"] is None
    )
    listed = await (await client.get(f"/api/runs/{run_id}/feedback")).json()
    assert [f["id"] for f in listed] == [item["id"]]
    issues = await (await client.get("/api/workspace/issues")).json()
    assert issues["issues"] == []
    assert commit_count(ws_path) == before  # feedback lives on floom/runs, not main
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while True:
        files = git(ws_path, "ls-tree", "-r", "--name-only", "floom/runs").split()
        path = next((f for f in files if f.endswith(f"{run_id}/feedback.ndjson")), None)
        if path:
            break
        assert loop.time() < end, "feedback was never committed to floom/runs"
        await asyncio.sleep(0.05)
    assert item["id"] in git(ws_path, "show", f"floom/runs:{path}")


async def test_feedback_issue_from_stored_feedback_dedups(client, ws_path, run_id):
    item = await _feedback(client, run_id, rating=2)
    url = f"/api/runs/{run_id}/feedback/issue"
    resp = await client.post(url, json={"feedback_id": item["id"]})
    assert resp.status == 201, await resp.text()
    first = await resp.json()
    issue = first["issue"]
    assert first["created"] is True and first["issue_id"] == issue["id"] == "ISSUE-0001"
    assert (issue["asset_type"], issue["asset_id"], issue["source"], issue["labels"]) == (
        "run", run_id, "run_feedback", ["run-feedback"])
    assert "The count looks off by one." in issue["body"] and "- Rating: 2" in issue["body"]
    assert f"- Run: {run_id}" in issue["body"] and "- Worker: word-count" in issue["body"]
    assert first["feedback"]["issue_id"] == "ISSUE-0001"
    text = (ws_path / ".floom/issues/ISSUE-0001.md").read_text()
    assert f"feedback_id: {item['id']}\n" in text
    before = commit_count(ws_path)
    resp = await client.post(url, json={"feedback_id": item["id"], "feedback_text": "other"})
    again = await resp.json()
    assert resp.status == 200 and again["created"] is False and again["issue_id"] == "ISSUE-0001"
    assert commit_count(ws_path) == before
    listed = await (await client.get(f"/api/runs/{run_id}/feedback")).json()
    assert listed[0]["issue_id"] == "ISSUE-0001"


async def test_feedback_issue_with_adhoc_id_and_title(client, run_id):
    url = f"/api/runs/{run_id}/feedback/issue"
    body = {
        "feedback_text": "Wrong longest word",
        "feedback_id": "fb-1",
        "title": "Longest word bug",
    }
    results = await asyncio.gather(*(client.post(url, json=body) for _ in range(4)))
    payloads = [await r.json() for r in results]
    assert sorted(r.status for r in results) == [200, 200, 200, 201]
    assert {p["issue_id"] for p in payloads} == {"ISSUE-0001"}
    assert payloads[0]["issue"]["title"] == "Longest word bug"
    resp = await client.post(url, json={"feedback_text": "no id: always a new issue"})
    assert resp.status == 201 and (await resp.json())["issue_id"] == "ISSUE-0002"


@pytest.mark.parametrize("path,body,status,detail", [
    ("/api/runs/run_000000000000/feedback", {"content": "x"}, 404, "Run not found"),
    ("/api/runs/run_000000000000/feedback/issue", {"feedback_text": "x"}, 404, "Run not found"),
    ("{run}/feedback", {"content": "   "}, 400, "content"),
    ("{run}/feedback", {"content": "x", "rating": "sideways"}, 400, "rating"),
    ("{run}/feedback", {"content": "x", "rating": 9}, 400, "rating"),
    ("{run}/feedback/issue", {}, 422, "feedback_text"),
    ("{run}/feedback/issue", {"feedback_id": "fdbk_unknown"}, 422, "feedback_text"),
    ("{run}/feedback/issue", {"feedback_text": "x", "title": "two\nlines"}, 400, "title"),
])
async def test_bad_feedback_input_changes_nothing(
    client, ws_path, run_id, path, body, status, detail
):
    before = commit_count(ws_path)
    resp = await client.post(path.replace("{run}", f"/api/runs/{run_id}"), json=body)
    assert resp.status == status, await resp.text()
    assert detail in (await resp.json())["detail"]
    assert commit_count(ws_path) == before
    assert await (await client.get(f"/api/runs/{run_id}/feedback")).json() == []

"""PATCH /workers/{id} (the reference's instance settings) against the real server: each setting
is an edit of worker.yml, all of one request in one commit, refused whole (no commit) when any
part is wrong; stars are per person and kept off the repository; saved input values feed runs."""

from __future__ import annotations

import pytest

from tests.conftest import add_member, commit_count, git
from tests.http.test_runs import trigger, wait_run


async def patch(client, body: dict, status: int = 200, worker: str = "word-count") -> dict:
    resp = await client.patch(f"/api/workers/{worker}", json=body)
    data = await resp.json()
    assert resp.status == status, data
    return data


def manifest(ws_path) -> str:
    return (ws_path / "workers/word-count/worker.yml").read_text()


@pytest.mark.parametrize(("body", "triggers", "yml"), [
    ({"trigger_type": "schedule", "cron": "*/5 * * * *"}, ["schedule: */5 * * * * (UTC)"],
     "triggers:\n- type: schedule\n  cron: '*/5 * * * *'\n"),
    ({"trigger_type": "cron", "cron_expr": "0 9 * * 1", "cron_timezone": "Asia/Tokyo"},
     ["schedule: 0 9 * * 1 (Asia/Tokyo)"],
     "triggers:\n- type: schedule\n  cron: 0 9 * * 1\n  timezone: Asia/Tokyo\n"),
    ({"trigger_type": "webhook"}, ["webhook"], "triggers:\n- type: webhook\n"),
])
async def test_patch_worker_trigger_rewrites_triggers(client, ws_path, body, triggers, yml):
    shown = await patch(client, body)
    assert shown["triggers"] == triggers
    assert yml in manifest(ws_path)
    assert "- type: manual" not in manifest(ws_path)
    assert "limits:\n  timeout_seconds: 60\n" in manifest(ws_path)  # the rest is untouched


async def test_patch_worker_cron_alone_edits_the_schedule(client, ws_path):
    await patch(client, {"trigger_type": "schedule", "cron": "0 9 * * *", "timezone": "UTC"})
    shown = await patch(client, {"timezone": "Europe/Berlin"})
    assert shown["triggers_spec"][0]["cron"] == "0 9 * * *"
    assert shown["triggers_spec"][0]["timezone"] == "Europe/Berlin"
    assert git(ws_path, "log", "-1", "--format=%s").strip() == "worker word-count: update triggers"
    back = await patch(client, {"trigger_type": "manual"})
    assert back["triggers"] == ["manual"] and back["trigger_type"] == "manual"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"cron": "0 9 * * *"}, "cron: the worker has no schedule trigger"),
        ({"trigger_type": "schedule"}, "cron: a schedule trigger needs a cron expression"),
        ({"trigger_type": "schedule", "cron": "every day"}, "triggers[0]: invalid cron expression"),
        (
            {"trigger_type": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Olympus"},
            "triggers[0]: unknown timezone",
        ),
        (
            {"input_values": {"min_length": "many"}, "enabled": False},
            "input_values.min_length: expected a number",
        ),
        ({"trigger_type": "hourly"}, "request body: Invalid enum value 'hourly'"),
        ({"visibility": "everyone"}, "request body: Invalid enum value 'everyone'"),
        ({"name": ""}, "request body: Expected `str` of length >= 1"),
        ({"input_values": ["a"]}, "request body: Expected `object | null`, got `array`"),
    ],
)
async def test_patch_worker_bad_setting_is_400_without_commit(client, ws_path, body, detail):
    before = commit_count(ws_path)
    data = await patch(client, body, 400)
    assert data["detail"].startswith(detail), data
    assert commit_count(ws_path) == before
    assert "paused" not in manifest(ws_path)


async def test_patch_worker_enabled_pauses_and_resumes(client, ws_path):
    paused = await patch(client, {"enabled": False})
    assert paused["enabled"] is False and paused["paused"] is True and paused["status"] == "paused"
    assert (
        await client.post("/api/workers/word-count/runs", json={"inputs": {"text": "x"}})
    ).status == 409
    resumed = await patch(client, {"enabled": True})
    assert resumed["enabled"] is True and "paused" not in manifest(ws_path)


async def test_patch_worker_nothing_to_change_makes_no_commit(client, ws_path):
    before = commit_count(ws_path)
    shown = await patch(client, {"enabled": True, "visibility": "private", "unknown": 1})
    assert shown["id"] == "word-count"
    assert commit_count(ws_path) == before


async def test_patch_worker_input_values_fill_runs_and_schedules(client, ws_path):
    shown = await patch(client, {"input_values": {"text": "saved words here", "min_length": 5},
                                 "name": "Counter", "description": "Counts."})
    assert shown["input_values"] == {"text": "saved words here", "min_length": 5}
    assert (shown["name"], shown["description"]) == ("Counter", "Counts.")
    assert "input_values:\n  text: saved words here\n  min_length: 5\n" in manifest(ws_path)
    run = await wait_run(client, (await trigger(client, "word-count", {}))["run_id"])
    assert run["inputs"] == {"text": "saved words here", "min_length": 5}
    assert run["output"] == {"words": 2, "lines": 1, "longest": "saved"}
    own = await wait_run(client, (await trigger(client, "word-count", {"min_length": 1}))["run_id"])
    assert own["inputs"]["min_length"] == 1  # a run's own inputs win
    cleared = await patch(client, {"input_values": {}})
    assert cleared["input_values"] == {} and "input_values" not in manifest(ws_path)


async def test_patch_worker_starred_is_per_person_and_filters_list(client, anon, ws_path):
    before = commit_count(ws_path)
    _, alice = add_member(anon.server.app, "default", "member", "alice")
    assert (await patch(client, {"starred": True}))["starred"] is True
    assert commit_count(ws_path) == before  # a bookmark, not workspace content
    starred = await (await client.get("/api/workers?starred=true")).json()
    assert [w["id"] for w in starred] == ["word-count"]
    hers = await (await anon.get("/api/workers/word-count", headers=alice)).json()
    assert hers["starred"] is False
    assert (await (await anon.get("/api/workers?starred=true", headers=alice)).json()) == []
    assert (await patch(client, {"starred": False}))["starred"] is False


async def test_get_worker_webhook_url_shown_and_secret_only_once(client):
    await patch(client, {"trigger_type": "webhook"})
    assert (await (await client.get("/api/workers/word-count")).json())["webhook_url"] is None
    rotated = await patch(client, {"webhook_secret_rotate": True})
    assert len(rotated["new_webhook_secret"]) == 64
    again = await (await client.get("/api/workers/word-count")).json()
    assert again["new_webhook_secret"] is None
    assert again["webhook_url"] == rotated["webhook_url"] and "token=" in again["webhook_url"]


async def test_get_worker_viewer_permissions(client, anon):
    _, viewer = add_member(anon.server.app, "default", "viewer", "vic")
    shown = await (await anon.get("/api/workers/word-count", headers=viewer)).json()
    assert shown["permissions"] == {"is_owner": False, "can_view": True, "can_edit": False,
                                    "can_run": False, "can_delete": False, "can_share": False}

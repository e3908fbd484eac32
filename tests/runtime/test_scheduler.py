"""Cron triggers: next-fire computation in IANA timezones (pure), and scheduler ticks driven with
an explicit clock against a real server (no waiting for real cron ticks)."""

from __future__ import annotations

import datetime as dt

import pytest

from floom_git.http.keys import SCHEDULER
from floom_git.runtime.scheduler import next_fire
from tests.conftest import uid
from tests.http.test_runs import RESULT_OK, make_worker, wait_run

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("cron", "tz", "after", "expected"), [
    ("0 9 * * *", "Europe/Berlin", "2026-01-15T07:30:00", "2026-01-15T08:00:00"),  # CET = UTC+1
    ("0 9 * * *", "Europe/Berlin", "2026-07-15T07:30:00", "2026-07-16T07:00:00"),  # CEST = UTC+2
    ("0 9 * * *", "Europe/Berlin", "2026-03-28T09:00:00", "2026-03-29T07:00:00"),  # DST starts
    ("30 8 * * 1", "America/New_York", "2026-11-20T00:00:00", "2026-11-23T13:30:00"),  # Monday, EST
    ("0 0 * * *", "Asia/Kolkata", "2026-05-01T00:00:00", "2026-05-01T18:30:00"),  # UTC+5:30
    ("*/15 * * * *", None, "2026-05-01T10:07:00", "2026-05-01T10:15:00"),
])
def test_next_fire_in_timezone(cron, tz, after, expected):
    assert next_fire(cron, tz, at(after)) == at(expected)


@pytest.mark.parametrize(("cron", "tz"), [("not a cron", None), ("0 9 * * *", "Mars/Olympus")])
def test_next_fire_invalid_raises(cron, tz):
    with pytest.raises(ValueError):
        next_fire(cron, tz, at("2026-01-01T00:00:00"))


SCHEDULED = "triggers:\n  - type: schedule\n    cron: \"0 9 * * *\"\n    timezone: Europe/Berlin\n"


@pytest.fixture
def settings(settings):
    return settings.replace(scheduler=False)


async def test_tick_plans_then_fires_once_for_missed_ticks(client):
    await make_worker(client, "daily", RESULT_OK, extra=SCHEDULED)
    scheduler = client.server.app[SCHEDULER]
    assert await scheduler.tick(at("2026-01-10T12:00:00")) == []  # first sight: plan only
    state = scheduler.state(uid(client.server.app, "default"))["daily#0"]
    assert state["next_run_at"] == "2026-01-11T08:00:00.000Z"
    assert await scheduler.tick(at("2026-01-11T07:59:00")) == []
    # Three days of missed 09:00 ticks collapse into one run.
    fired = await scheduler.tick(at("2026-01-14T10:00:00"))
    assert len(fired) == 1 and fired[0][:2] == ("default", "daily#0")
    run = await wait_run(client, fired[0][2])
    assert run["trigger_source"] == "schedule" and run["status"] == "completed"
    assert (
        scheduler.state(uid(client.server.app, "default"))["daily#0"]["next_run_at"]
        == "2026-01-15T08:00:00.000Z"
    )
    assert await scheduler.tick(at("2026-01-14T11:00:00")) == []


async def test_tick_skips_missing_inputs_and_paused_worker(client):
    inputs = "    - {name: topic, type: string, required: true}\n"
    await make_worker(client, "needy", RESULT_OK, inputs=inputs, extra=SCHEDULED)
    await make_worker(client, "resting", RESULT_OK, extra=SCHEDULED)
    await client.post("/api/workers/resting/pause")
    scheduler = client.server.app[SCHEDULER]
    await scheduler.tick(at("2026-01-10T12:00:00"))
    fired = {key: action for _ws, key, action in await scheduler.tick(at("2026-01-11T09:00:00"))}
    assert fired["needy#0"] == "skipped: missing required inputs: topic"
    assert fired["resting#0"] == "skipped: worker is paused"
    assert (await client.get("/api/runs")).headers["X-Total-Count"] == "0"


async def test_tick_skips_while_worker_has_active_run(client):
    sleeper = "import time\ntime.sleep(300)\n"
    await make_worker(client, "busy", sleeper, extra=SCHEDULED)
    scheduler = client.server.app[SCHEDULER]
    await scheduler.tick(at("2026-01-10T12:00:00"))
    rid = (await (await client.post("/api/workers/busy/runs", json={})).json())["run_id"]
    fired = await scheduler.tick(at("2026-01-11T09:00:00"))
    assert [(ws, key) for ws, key, _ in fired] == [("default", "busy#0")]
    assert fired[0][2] in {
        f"skipped: run {rid} is still queued",
        f"skipped: run {rid} is still running",
    }
    await client.post(f"/api/runs/{rid}/cancel")

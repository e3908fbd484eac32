"""Operational views show only what the caller administers: /health/details and /metrics give
per-workspace detail for the workspaces the caller is admin of, and server-wide figures only to
server admins and the admin shared secret. Credentials in remote URLs are masked everywhere."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, MANAGER
from floom_git.redaction import mask_url as redact
from tests.conftest import SECRET, add_member, uid

TOKEN = "ghp_S3cretInTheUrl"
SERVER_WIDE = ("floom_http_requests_total", "floom_asyncio_tasks", "floom_run_queue_depth",
               "floom_runs_active", "floom_workspaces", "process_open_fds")


def _labels(text: str) -> tuple[set[str], set[str]]:
    """(metric sample names, workspace label values) of a scrape."""
    names, spaces = set(), set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            if "workspace" in sample.labels:
                spaces.add(sample.labels["workspace"])
    return names, spaces


@pytest.fixture
async def ops(aiohttp_client, settings, caplog):
    caplog.set_level(logging.INFO)
    app = create_app(settings.replace(git_remote=f"https://{TOKEN}@127.0.0.1:9/{{workspace}}.git",
                                      mirror_retry_seconds=3600))
    client = await aiohttp_client(app)
    await app[MANAGER].create("team")
    await app[MANAGER].create("other")
    creds = {
        "team_admin": add_member(app, "team", "admin", "ann")[1],
        "member": add_member(app, "team", "member", "mel")[1],
        "server_admin": add_member(app, "default", None, "root", admin=True)[1],
        "secret": {"x-floom-secret": SECRET},
    }
    value, _ = app[IDENTITY].tokens.mint(
        user_id="usr_ci", kind="workspace", name="ci", role="admin", workspace_id=uid(app, "team")
    )
    creds["team_token"] = {"x-floom-token": value}
    return client, creds


@pytest.mark.parametrize("who", ["team_admin", "team_token"])
async def test_health_and_metrics_show_only_the_workspaces_you_administer(ops, who):
    client, creds = ops
    resp = await client.get("/health/details", headers=creds[who])
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    checks = body["checks"]
    assert checks["disk"] is None  # server-wide
    assert set(checks["mirror"]["workspaces"]) == {"team"}
    assert set(checks["repositories"]["workspaces"]) == {"team"}
    assert set(checks["scheduler"]["workspaces"]) == {"team"}
    resp = await client.get("/metrics", headers=creds[who])
    assert resp.status == 200
    names, spaces = _labels(await resp.text())
    assert spaces == {"team"} and "floom_runs" in names
    assert not names & set(SERVER_WIDE)


@pytest.mark.parametrize("who", ["member", "secret"])
async def test_health_and_metrics_need_admin_somewhere(ops, who):
    client, creds = ops
    for path in ("/health/details", "/metrics"):
        resp = await client.get(path, headers=creds[who])
        assert resp.status == 403, path
        assert "admin" in (await resp.json())["detail"]


async def test_health_and_metrics_show_everything_to_a_server_admin(ops):
    client, creds = ops
    body = await (await client.get("/health/details", headers=creds["server_admin"])).json()
    assert body["checks"]["disk"]["path"]
    assert set(body["checks"]["repositories"]["workspaces"]) == {"default", "team", "other"}
    names, spaces = _labels(
        await (await client.get("/metrics", headers=creds["server_admin"])).text()
    )
    assert spaces >= {"default", "team", "other"} and set(SERVER_WIDE) <= names


async def test_health_and_metrics_show_everything_to_the_admin_secret(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings.replace(shared_secret_role="admin")))
    body = await (await client.get("/health/details", headers={"x-floom-secret": SECRET})).json()
    assert body["checks"]["disk"] is not None
    resp = await client.get("/metrics", headers={"x-floom-secret": SECRET})
    assert set(SERVER_WIDE) <= _labels(await resp.text())[0]


async def test_credentials_in_remote_urls_are_masked_when_shown_or_logged(ops, caplog):
    client, creds = ops
    text = await (await client.get("/health/details", headers=creds["server_admin"])).text()
    assert TOKEN not in text and "https://***@127.0.0.1:9/team.git" in text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("url,shown", [
    ("https://user:pass@host/x.git", "https://user:***@host/x.git"),
    (f"https://{TOKEN}@host/x.git", "https://***@host/x.git"),
    ("https://host/hook?token=abc&x=1", "https://host/hook?token=***&x=1"),
    ("https://host/hook?access_token=abc", "https://host/hook?access_token=***"),
    ("https://host/hook?sig=abc#frag", "https://host/hook?sig=***#frag"),
    ("git@github.com:team/x.git", "git@github.com:team/x.git"),
    ("/srv/backup/floom.git", "/srv/backup/floom.git"),
])
def test_mask_credentials_in_urls(url, shown):
    assert redact(url) == shown


async def test_alert_targets_are_shown_with_credentials_masked(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings.replace(alert_allow_private_urls=True)),
                                  headers={"x-floom-secret": SECRET})
    url = "https://bot:hunter2@alerts.example.com/hook?token=abc123&team=ops"
    resp = await client.post("/api/workers/word-count/alerts", json={"url": url, "on": ["failed"]})
    assert resp.status == 201, await resp.text()
    masked = "https://bot:***@alerts.example.com/hook?token=***&team=ops"
    assert (await resp.json())["url"] == masked
    listed = await (await client.get("/api/workers/word-count/alerts")).json()
    assert [a["url"] for a in listed] == [masked]
    stored = next(settings.system_dir.glob("alerts/*.json")).read_text()
    assert "hunter2" in stored  # deliveries need the real target; only views mask it

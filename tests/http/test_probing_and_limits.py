"""The smaller holes: probing without credentials learns nothing, wrong credentials are rate
limited per client IP, tokens in paths never reach the logs, callers cannot fake a run's
trigger, and a guessable FLOOM_SECRET is refused at start-up."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys

import pytest

from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, LIMITER, MANAGER
from tests.conftest import SECRET


# -- credential-free probing --------------------------------------------------------------------
@pytest.mark.parametrize("method,path,headers", [
    ("GET", "/api/workers", {"x-workeros-workspace": "{ws}"}),
    ("GET", "/api/workspaces/{ws}/members", {}),
    ("DELETE", "/api/workspaces/{ws}", {}),
    ("POST", "/api/workspaces/{ws}/select", {}),
    ("GET", "/git/{ws}.git/info/refs?service=git-upload-pack", {}),
    ("POST", "/api/webhooks/word-count?workspace={ws}&token=x", {}),
])
async def test_probing_workspaces_without_credentials_is_one_answer(anon, method, path, headers):
    """Whether a workspace exists never changes what a caller without credentials gets."""
    await anon.server.app[MANAGER].create("secret-project")
    answers = set()
    for ws in ("secret-project", "no-such-project"):
        resp = await anon.request(method, path.format(ws=ws),
                                  headers={k: v.format(ws=ws) for k, v in headers.items()})
        answers.add((resp.status, await resp.text()))
    assert len(answers) == 1 and next(iter(answers))[0] == 401, answers


# -- failed authentication per client IP --------------------------------------------------------
@pytest.fixture
async def limited(aiohttp_client, settings):
    app = create_app(settings.replace(rate_auth_fail_per_minute=30))
    app[LIMITER].clock = lambda: 1_000.0  # no refill while the test runs, however slow the machine
    return await aiohttp_client(app)


@pytest.mark.parametrize("how", ["secret", "token", "basic", "cookie", "webhook"])
async def test_wrong_credentials_are_limited_per_client_ip(limited, how):
    wrong = {
        "secret": ("GET", "/api/workers", {"x-floom-secret": "not-the-secret-0000"}),
        "token": ("GET", "/api/workers", {"x-floom-token": "floom_" + "x" * 43}),
        "basic": ("GET", "/git/default.git/info/refs?service=git-upload-pack",
                  {"Authorization": "Basic " + base64.b64encode(b"git:wrong-secret-00").decode()}),
        "cookie": ("GET", "/api/auth/me", {"Cookie": "floom_session=stale"}),
        "webhook": ("POST", "/api/webhooks/word-count?token=" + "0" * 32, {}),
    }[how]
    statuses = []
    for _ in range(31):
        resp = await limited.request(wrong[0], wrong[1], headers=wrong[2])
        statuses.append(resp.status)
    assert statuses == [401] * 30 + [429]
    assert int(resp.headers["Retry-After"]) >= 1
    assert "failed sign-ins" in (await resp.json())["detail"]
    right = await limited.get("/api/workers", headers={"x-floom-secret": SECRET})
    assert right.status == 429  # the right secret does not help a guesser either


async def test_requests_without_any_credential_spend_no_failure_budget(limited):
    for _ in range(40):
        assert (await limited.get("/api/workers")).status == 401
    assert (await limited.get("/api/workers", headers={"x-floom-secret": SECRET})).status == 200


async def test_wrong_passwords_spend_the_failure_budget(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings.replace(rate_auth_fail_per_minute=3)))
    client.server.app[IDENTITY].users.create("alice", password="a long passphrase")
    for _ in range(3):
        resp = await client.post("/auth/login", json={"username": "alice", "password": "nope"})
        assert resp.status == 401
    resp = await client.post(
        "/auth/login", json={"username": "alice", "password": "a long passphrase"}
    )
    assert resp.status == 429


# -- tokens in paths are kept out of logs -------------------------------------------------------
@pytest.mark.parametrize("path,logged", [
    ("/s/fls_AbCdEf0123456789AbCdEf01", "/s/[redacted]"),
    ("/api/s/fls_AbCdEf0123456789AbCdEf01", "/api/s/[redacted]"),
    ("/auth/magic/eyJ1IjoidXNyIn0.c2lnbmF0dXJl", "/auth/magic/[redacted]"),
    ("/api/v1/auth/magic/eyJ1IjoidXNyIn0.c2lnbmF0dXJl", "/api/v1/auth/magic/[redacted]"),
])
async def test_tokens_in_paths_are_redacted_in_the_access_log(anon, caplog, path, logged):
    caplog.set_level(logging.INFO, logger="floom_git.access")
    await anon.get(path)
    secret = path.rsplit("/", 1)[1]
    lines = [r for r in caplog.records if r.name == "floom_git.access"]
    assert lines and all(
        secret not in r.getMessage() and secret not in str(r.__dict__) for r in lines
    )
    assert any(logged in r.getMessage() for r in lines)


# -- trigger_source -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source,status",
    [
        (None, 200),
        ("manual", 200),
        ("api", 200),
        ("cli", 200),
        ("webhook", 400),
        ("schedule", 400),
        ("approval", 400),
        ("cron-job", 400),
    ],
)
async def test_api_callers_set_only_manual_api_or_cli_trigger_source(client, source, status):
    body = {"inputs": {"text": "a b"}}
    if source is not None:
        body["trigger_source"] = source
    resp = await client.post("/api/workers/word-count/runs", json=body)
    assert resp.status == status, await resp.text()
    if status == 400:
        assert (await resp.json())["detail"].startswith("trigger_source:")
        assert (await client.get("/api/runs")).headers["X-Total-Count"] == "0"
    else:
        run = await (await client.get(f"/api/runs/{(await resp.json())['run_id']}")).json()
        assert run["trigger_source"] == (source or "manual")


# -- a guessable shared secret --------------------------------------------------------------------
def test_short_secret_is_refused_before_the_server_touches_anything(settings):
    with pytest.raises(ValueError, match="at least 16"):
        create_app(settings.replace(secret="too-short"))
    assert not settings.data_dir.exists()


def test_serve_with_a_short_secret_exits_with_a_clear_message(tmp_path):
    env = {**os.environ, "FLOOM_SECRET": "hunter2", "FLOOM_DATA_DIR": str(tmp_path / "data"),
           "FLOOM_PORT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "floom_git", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "FLOOM_SECRET is 7 characters long; it must have at least 16" in proc.stderr


"""The dashboard's writes over aiohttp's client, each checked through the REST API: pause and
resume, a webhook URL shown once that starts runs, cancel, context packs, settings (tokens,
secrets, members), device deny, one-time links and signing out."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from yarl import URL

from tests.dashboard.conftest import sign_in

HOOKED_YML = """schema_version: "0.3"
name: hooked
title: Hooked
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
triggers:
  - type: webhook
"""


async def _post(client, origin, path, data=None, **kw):  # type: ignore[no-untyped-def]
    return await client.post(path, data=data or {}, headers={"Origin": origin}, **kw)


async def test_post_pause_and_resume_edit_worker_yml(signed_in, origin, api_headers):
    resp = await _post(signed_in, origin, "/ui/workers/word-count/pause")
    assert resp.status == 200 and "Paused word-count" in await resp.text()
    worker = await (await signed_in.get("/api/workers/word-count", headers=api_headers)).json()
    assert worker["paused"] is True and worker["status"] == "paused"
    resp = await _post(signed_in, origin, "/ui/workers/word-count/run", {"in.text": "x"})
    assert resp.status == 400 and "is paused" in await resp.text()
    await _post(signed_in, origin, "/ui/workers/word-count/resume")
    worker = await (await signed_in.get("/api/workers/word-count", headers=api_headers)).json()
    assert worker["paused"] is False
    versions = await (
        await signed_in.get("/api/workers/word-count/versions", headers=api_headers)
    ).json()
    assert [v["message"] for v in versions[:2]] == [
        "worker word-count: resume",
        "worker word-count: pause",
    ]


async def test_post_webhook_shows_url_once_and_it_starts_runs(signed_in, origin, api_headers):
    resp = await signed_in.post(
        "/api/workers", json={"worker_yml": HOOKED_YML, "run_py": "print(1)\n"}, headers=api_headers
    )
    assert resp.status == 201
    page = await (await signed_in.get("/ui/workers/hooked")).text()
    assert "New webhook URL and secret" in page and "token=" not in page.replace("token=…", "")
    body = await (await _post(signed_in, origin, "/ui/workers/hooked/webhook")).text()
    url = re.search(r'id="webhook-url">([^<]+)<', body).group(1).replace("&amp;", "&")
    target = URL(url)
    resp = await signed_in.post(target.path_qs, json={"note": "from a webhook"})
    assert resp.status == 200, await resp.text()
    run = await resp.json()
    detail = await (await signed_in.get(f"/api/runs/{run['run_id']}", headers=api_headers)).json()
    assert detail["trigger_source"] == "webhook"
    assert url not in await (await signed_in.get("/ui/workers/hooked")).text()


async def test_post_cancel_stops_a_queued_run(signed_in, origin, api_headers):
    made = await (
        await signed_in.post(
            "/api/workers/word-count/runs", json={"inputs": {"text": "a"}}, headers=api_headers
        )
    ).json()
    resp = await _post(signed_in, origin, f"/ui/runs/{made['run_id']}/cancel")
    text = await resp.text()
    assert resp.status == 200
    for _ in range(300):
        status = (await (await signed_in.get(f"/api/runs/{made['run_id']}",
                                             headers=api_headers)).json())["status"]
        if status in ("cancelled", "completed", "failed"):
            break
        await asyncio.sleep(0.1)
    assert status in ("cancelled", "completed")  # it may finish before the cancel arrives
    assert made["run_id"] in text


async def test_post_new_context_pack_and_upload(signed_in, origin, api_headers):
    resp = await _post(signed_in, origin, "/ui/new/context", {"name": "handbook",
                                                              "description": "How we work"})
    assert resp.status == 200 and "Created context pack handbook" in await resp.text()


    form = aiohttp.FormData()
    form.add_field("path_prefix", "team")
    form.add_field("file", b"# Hello\n", filename="hello.md", content_type="text/markdown")
    resp = await signed_in.post(
        "/ui/contexts/handbook/upload", data=form, headers={"Origin": origin}
    )
    assert resp.status == 200 and "Uploaded 1 file." in await resp.text()
    detail = await (await signed_in.get("/api/contexts/handbook", headers=api_headers)).json()
    assert "team/hello.md" in [f["path"] for f in detail["files"]]
    assert detail["description"] == "How we work"


async def test_post_settings_token_secret_and_member(signed_in, origin, api_headers):
    body = await (await _post(signed_in, origin, "/ui/settings/tokens",
                              {"name": "deploy", "role": "member", "expires_days": "7"})).text()
    token = re.search(r'id="new-token">([^<]+)<', body).group(1)
    listed = await (await signed_in.get("/api/workspace/tokens", headers=api_headers)).json()
    row = next(t for t in listed if t["name"] == "deploy")
    assert row["role"] == "member" and row["expires_at"]
    await _post(signed_in, origin, f"/ui/settings/tokens/{row['id']}/revoke")
    resp = await signed_in.get("/api/workers", headers={"x-floom-token": token})
    assert resp.status == 401

    resp = await _post(
        signed_in, origin, "/ui/settings/secrets", {"name": "bad name", "value": "x"}
    )
    assert resp.status == 400
    await _post(signed_in, origin, "/ui/settings/secrets", {"name": "API_KEY", "value": "s3cret"})
    names = {s["name"]: s["status"] for s in
             await (await signed_in.get("/api/secrets", headers=api_headers)).json()}
    assert names["API_KEY"] == "set"
    assert "s3cret" not in await (await signed_in.get("/ui/settings")).text()
    await _post(signed_in, origin, "/ui/settings/secrets/API_KEY/delete")
    names = {
        s["name"] for s in await (await signed_in.get("/api/secrets", headers=api_headers)).json()
    }
    assert "API_KEY" not in names

    await _post(
        signed_in, origin, "/ui/settings/invite", {"email": "lin@example.com", "role": "viewer"}
    )
    team = await (
        await signed_in.get("/api/workspaces/default/members", headers=api_headers)
    ).json()
    assert {"email": "lin@example.com", "role": "viewer", "status": "pending"}.items() <= \
        next(m for m in team["members"] if m["email"] == "lin@example.com").items()
    await _post(signed_in, origin, "/ui/settings/members/lin%40example.com/remove")
    team = await (
        await signed_in.get("/api/workspaces/default/members", headers=api_headers)
    ).json()
    assert "lin@example.com" not in {m["email"] for m in team["members"]}


async def test_post_device_deny_and_unknown_code(signed_in, origin):
    start = await (await signed_in.post("/api/cli-auth/devices", json={})).json()
    resp = await _post(
        signed_in, origin, "/ui/device", {"user_code": start["user_code"], "decision": "deny"}
    )
    assert resp.status == 200 and "Denied" in await resp.text()
    resp = await signed_in.post(
        "/api/auth/cli-exchange", json={"device_code": start["device_code"]}
    )
    assert resp.status == 403
    resp = await _post(
        signed_in, origin, "/ui/device", {"user_code": "BCDF-GHJK", "decision": "approve"}
    )
    assert resp.status == 400 and "unknown code" in await resp.text()


async def test_magic_link_pasted_signs_in_once_and_sign_out_ends_session(
        signed_in, visitor, origin):
    body = await (await _post(signed_in, origin, "/ui/account/magic-link")).text()
    link = re.search(r'id="magic-link">([^<]+)<', body).group(1)
    api_form = re.search(r"The API form of the same link: <code>([^<]+)<", body).group(1)
    resp = await _post(
        visitor, origin, "/ui/login/magic", {"link": api_form}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == URL(link).path
    confirm = await visitor.get(resp.headers["Location"])
    assert confirm.status == 200 and "Sign in with a one-time link" in await confirm.text()
    resp = await _post(visitor, origin, URL(link).path, allow_redirects=False)
    assert resp.status == 303 and "floom_session" in resp.cookies
    assert "ada" in await (await visitor.get("/ui/account")).text()
    again = await _post(visitor, origin, URL(link).path)
    assert again.status == 401 and "already used" in await again.text()

    resp = await _post(signed_in, origin, "/ui/logout", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/login"
    resp = await signed_in.get("/ui/workers", allow_redirects=False)
    assert resp.status == 303


async def test_sign_in_as_second_user_sees_own_name(aiohttp_client, server, origin):
    from tests.dashboard.conftest import make_user

    make_user(server, "zoe", "member")
    client = await aiohttp_client(server)
    await sign_in(client, "zoe", origin)
    body = await (await client.get("/ui/")).text()
    assert "zoe" in body and "member in default" in body

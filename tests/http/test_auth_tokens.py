"""Personal and workspace tokens over HTTP, and the CLI device flow that mints one."""

from __future__ import annotations

import time

import pytest

from floom_git.http.keys import IDENTITY, MANAGER
from tests.conftest import SECRET, WORKER_YML, add_member, uid


async def test_create_personal_token_shows_value_once(anon):
    user, headers = add_member(anon.server.app, "default", "member", "alice")
    resp = await anon.post(
        "/auth/tokens", json={"name": "laptop", "expires_days": 30}, headers=headers
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["token"].startswith("floom_") and created["kind"] == "personal"
    assert created["user_id"] == user and created["expires_at"] and created["revoked"] is False
    listed = await (await anon.get("/auth/tokens", headers=headers)).json()
    assert {t["name"] for t in listed} == {"test", "laptop"}
    assert all("token" not in t for t in listed)
    resp = await anon.get("/api/workers", headers={"Authorization": f"Bearer {created['token']}"})
    assert resp.status == 200
    listed = await (await anon.get("/auth/tokens", headers=headers)).json()
    assert next(t for t in listed if t["name"] == "laptop")["last_used_at"] is not None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x", "expires_days": 0},
        {"name": "x", "role": "owner"},
        {"name": "x", "expires_days": "soon"},
    ],
)
async def test_create_personal_token_bad_body_is_400(anon, body):
    _, headers = add_member(anon.server.app, "default", "member", "alice")
    resp = await anon.post("/auth/tokens", json=body, headers=headers)
    assert resp.status == 400 and set(await resp.json()) == {"detail", "code"}
    assert len(await (await anon.get("/auth/tokens", headers=headers)).json()) == 1


async def test_revoke_personal_token_of_someone_else_is_404(anon):
    app = anon.server.app
    _, alice = add_member(app, "default", "member", "alice")
    _, bob = add_member(app, "default", "member", "bob")
    bobs = (await (await anon.get("/auth/tokens", headers=bob)).json())[0]["id"]
    resp = await anon.delete(f"/auth/tokens/{bobs}", headers=alice)
    assert resp.status == 404
    assert (await anon.get("/api/workers", headers=bob)).status == 200


async def test_personal_token_role_cap_never_escalates(anon):
    _, headers = add_member(anon.server.app, "default", "admin", "alice")
    token = (await (await anon.post("/auth/tokens", json={"name": "ro", "role": "viewer"},
                                    headers=headers)).json())["token"]
    ro = {"x-floom-token": token}
    assert (await anon.get("/api/workers", headers=ro)).status == 200
    resp = await anon.post("/api/workers/reload", headers=ro)
    assert resp.status == 403 and "you are viewer" in (await resp.json())["detail"]


async def test_personal_tokens_need_a_user(anon):
    resp = await anon.post("/auth/tokens", json={"name": "x"}, headers={"x-floom-secret": SECRET})
    assert resp.status == 403


async def test_workspace_token_acts_only_in_its_workspace(anon):
    app = anon.server.app
    await app[MANAGER].create("other")
    _, admin = add_member(app, "default", "admin", "alice")
    resp = await anon.post("/api/workspace/tokens", json={"name": "ci"}, headers=admin)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["kind"] == "workspace" and created["workspace_id"] == "default"
    assert created["role"] == "member"
    ws_token = {"x-floom-token": created["token"]}
    assert (await anon.post("/api/workers/reload", headers=ws_token)).status == 200
    me = await (await anon.get("/auth/me", headers=ws_token)).json()
    assert me["auth_method"] == "workspace_token" and me["role"] == "member" and me["user"] is None
    resp = await anon.get("/api/workers", headers={**ws_token, "x-workeros-workspace": "other"})
    assert resp.status == 403 and (await resp.json())["detail"] == "Not a member of the workspace"
    assert (await anon.get("/api/workspace/tokens", headers=ws_token)).status == 403
    assert (await anon.post("/api/workspaces", json={"id": "mine"}, headers=ws_token)).status == 403
    listed = await (await anon.get("/api/workspace/tokens", headers=admin)).json()
    assert [t["id"] for t in listed] == [created["id"]]
    resp = await anon.delete(f"/api/workspace/tokens/{created['id']}", headers=admin)
    assert resp.status == 200 and (await resp.json())["revoked"] is True
    assert (await anon.get("/api/workers", headers=ws_token)).status == 401


@pytest.mark.parametrize(("role", "reads", "writes"), [("viewer", 200, 403), ("member", 200, 201)])
async def test_workspace_token_may_do_what_its_role_allows(anon, role, reads, writes):
    """The decision (docs/api.md, "Workspace tokens"): the role an admin mints decides, as for a
    member; the reference's read-and-run-only token is not copied, since CI pushes with these."""
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    created = await (await anon.post("/api/workspace/tokens", json={"name": "ci", "role": role},
                                     headers=admin)).json()
    token = {"x-floom-token": created["token"]}
    assert (await anon.get("/api/workers/word-count", headers=token)).status == reads
    run = await anon.post(
        "/api/workers/word-count/runs", json={"inputs": {"text": "a"}}, headers=token
    )
    assert run.status == (200 if role == "member" else 403)
    body = {"worker_yml": WORKER_YML.format(name="ci-made", title="CI"), "run_py": "print(1)\n"}
    assert (await anon.post("/api/workers", json=body, headers=token)).status == writes
    assert (await anon.post("/api/workers/reload", headers=token)).status == (
        200 if role == "member" else 403
    )


async def test_workspace_token_role_is_capped_by_creator(anon):
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    resp = await anon.post(
        "/api/workspace/tokens", json={"name": "x", "role": "admin"}, headers=admin
    )
    assert resp.status == 201
    resp = await anon.post(
        "/api/workspace/tokens", json={"name": "x", "role": "owner"}, headers=admin
    )
    assert resp.status == 400  # owner tokens do not exist
    _, member = add_member(anon.server.app, "default", "member", "bob")
    assert (
        await anon.post("/api/workspace/tokens", json={"name": "x"}, headers=member)
    ).status == 403


async def test_workspace_token_of_another_workspace_cannot_be_revoked_here(anon):
    app = anon.server.app
    await app[MANAGER].create("other")
    user, admin = add_member(app, "default", "admin", "alice")
    app[IDENTITY].members.add(uid(app, "other"), user, "admin")
    other = await (await anon.post("/api/workspace/tokens", json={"name": "x"},
                                   headers={**admin, "x-workeros-workspace": "other"})).json()
    resp = await anon.delete(f"/api/workspace/tokens/{other['id']}", headers=admin)
    assert resp.status == 404


# -- the CLI device flow ---------------------------------------------------------------------
async def _start(anon):
    resp = await anon.post("/api/cli-auth/devices", json={"client_name": "my laptop"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_device_flow_mints_a_token_with_the_approvers_role(anon):
    _, member = add_member(anon.server.app, "default", "member", "alice")
    start = await _start(anon)
    assert set(start) == {"device_code", "user_code", "verification_url", "expires_in_seconds",
                          "polling_interval_seconds"}
    assert start["expires_in_seconds"] == 600 and start["verification_url"].endswith("/ui/device")
    pending = await anon.post("/auth/cli-exchange", json={"device_code": start["device_code"]})
    assert pending.status == 400 and "pending" in (await pending.json())["detail"]
    assert (await pending.json())["code"] == "authorization_pending"  # what clients poll on
    resp = await anon.post(
        "/api/cli-auth/approve", json={"user_code": start["user_code"]}, headers=member
    )
    assert resp.status == 200
    resp = await anon.post("/auth/cli-exchange", json={"device_code": start["device_code"]})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user"]["username"] == "alice" and body["token"].startswith("floom_")
    token = {"x-floom-token": body["token"]}
    assert (await anon.post("/api/workers/reload", headers=token)).status == 200  # member: write
    assert (await anon.get("/api/workspace/tokens", headers=token)).status == 403  # not admin
    again = await anon.post("/auth/cli-exchange", json={"device_code": start["device_code"]})
    assert again.status == 400 and "already exchanged" in (await again.json())["detail"]
    assert (await again.json())["code"] == "invalid_input"  # not pending: stop polling
    kinds = {t["kind"] for t in await (await anon.get("/auth/tokens", headers=member)).json()}
    assert kinds == {"personal", "cli"}


async def test_device_code_expired_is_refused(anon):
    _, member = add_member(anon.server.app, "default", "member", "alice")
    start = await _start(anon)
    anon.server.app[IDENTITY].devices.now = lambda: time.time() + 3600
    resp = await anon.post(
        "/api/cli-auth/approve", json={"user_code": start["user_code"]}, headers=member
    )
    assert resp.status == 400 and "expired" in (await resp.json())["detail"]
    resp = await anon.post("/auth/cli-exchange", json={"device_code": start["device_code"]})
    assert resp.status == 400 and "expired" in (await resp.json())["detail"]


async def test_device_code_denied_cannot_be_exchanged(anon):
    _, member = add_member(anon.server.app, "default", "member", "alice")
    start = await _start(anon)
    assert (await anon.post("/api/cli-auth/deny", json={"user_code": start["user_code"]},
                            headers=member)).status == 200
    resp = await anon.post("/auth/cli-exchange", json={"device_code": start["device_code"]})
    assert resp.status == 403 and "denied" in (await resp.json())["detail"]


@pytest.mark.parametrize("headers,status", [({}, 401), ({"x-floom-secret": SECRET}, 403)])
async def test_device_approval_needs_a_signed_in_user(anon, headers, status):
    start = await _start(anon)
    resp = await anon.post(
        "/api/cli-auth/approve", json={"user_code": start["user_code"]}, headers=headers
    )
    assert resp.status == status


@pytest.mark.parametrize("code", ["", "ABCD", "AAAA-AAAA", "BCDF-GHJK"])
async def test_device_approval_bad_or_unknown_code_is_400(anon, code):
    _, member = add_member(anon.server.app, "default", "member", "alice")
    resp = await anon.post("/api/cli-auth/approve", json={"user_code": code}, headers=member)
    assert resp.status == 400 and "user_code" in (await resp.json())["detail"]

"""Workspaces as tenants over HTTP: create, list, rename, select, delete; members and invites;
secrets (never returned, never in git); rate limits."""

from __future__ import annotations

import pytest

from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, MANAGER
from tests.conftest import SECRET, WORKER_YML, add_member, commit_count, git

PASSWORD = "correct horse battery staple"


async def _create(anon, headers, **body):
    resp = await anon.post("/api/workspaces", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_create_workspace_makes_creator_owner(anon, settings):
    app = anon.server.app
    _, alice = add_member(app, "default", "member", "alice")
    body = await _create(anon, alice, name="Sales Team", description="Leads and follow-ups")
    assert body["id"] == "sales-team" and body["role"] == "owner" and body["name"] == "Sales Team"
    repo = settings.workspaces_dir / "sales-team"
    assert "name: Sales Team" in (repo / "workspace.yml").read_text()
    assert git(repo, "log", "--format=%an %s").strip() == "alice workspace: create sales-team"
    listed = await (await anon.get("/api/workspaces", headers=alice)).json()
    assert [(w["id"], w["role"]) for w in listed["workspaces"]] == [("default", "member"),
                                                                    ("sales-team", "owner")]
    assert listed["active_id"] == "default"
    members = await (await anon.get("/api/workspaces/sales-team/members", headers=alice)).json()
    assert [(m["username"], m["role"]) for m in members["members"]] == [("alice", "owner")]
    assert members["my_role"] == "owner"
    resp = await anon.get("/api/workers", headers={**alice, "x-workeros-workspace": "sales-team"})
    assert resp.status == 200


@pytest.mark.parametrize("body,status", [
    ({"id": "Bad Id"}, 400), ({"id": "default"}, 409), ({}, 400), ({"name": "x" * 101}, 400),
    ({"id": "ok", "name": 5}, 400), ({"name": "default"}, 409),
])
async def test_create_workspace_bad_input_changes_nothing(anon, settings, body, status):
    _, alice = add_member(anon.server.app, "default", "member", "alice")
    resp = await anon.post("/api/workspaces", json=body, headers=alice)
    assert resp.status == status and set(await resp.json()) == {"detail", "code"}
    assert sorted(p.name for p in settings.workspaces_dir.iterdir()) == ["default"]


async def test_list_workspaces_shows_only_mine(anon):
    app = anon.server.app
    await app[MANAGER].create("secret-project")
    _, alice = add_member(app, "default", "viewer", "alice")
    _, root = add_member(app, "default", None, "root", admin=True)
    mine = (await (await anon.get("/api/workspaces", headers=alice)).json())["workspaces"]
    assert [w["id"] for w in mine] == ["default"]
    everything = (await (await anon.get("/api/workspaces", headers=root)).json())["workspaces"]
    assert {(w["id"], w["role"]) for w in everything} == {
        ("default", "owner"),
        ("secret-project", "owner"),
    }
    resp = await anon.get(
        "/api/workers", headers={**alice, "x-workeros-workspace": "secret-project"}
    )
    assert resp.status == 403 and (await resp.json())["detail"] == "Not a member of the workspace"


async def test_patch_workspace_commits_workspace_yml(anon, settings):
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    repo = settings.workspaces_dir / "default"
    before = commit_count(repo)
    resp = await anon.patch("/api/workspaces/default", json={"name": "Main", "description": "Ours"},
                            headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["name"], body["description"]) == ("Main", "Ours") and body["sha"]
    assert commit_count(repo) == before + 1
    assert (
        git(repo, "log", "-1", "--format=%an|%s").strip()
        == "alice|workspace: update name and description"
    )
    assert git(repo, "status", "--porcelain") == ""
    again = await anon.patch("/api/workspaces/default", json={"name": "Main"}, headers=admin)
    assert again.status == 200 and (await again.json())["sha"] is None
    assert commit_count(repo) == before + 1
    _, member = add_member(anon.server.app, "default", "member", "bob")
    assert (
        await anon.patch("/api/workspaces/default", json={"name": "X"}, headers=member)
    ).status == 403


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "a\nb"}, {"nme": "x"}])
async def test_patch_workspace_bad_body_is_400(anon, settings, body):
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    before = commit_count(settings.workspaces_dir / "default")
    resp = await anon.patch("/api/workspaces/default", json=body, headers=admin)
    assert resp.status == 400
    assert commit_count(settings.workspaces_dir / "default") == before


async def test_delete_workspace_owner_only_and_cleans_up(anon, settings):
    app = anon.server.app
    _alice_id, alice = add_member(app, "default", "member", "alice")
    await _create(anon, alice, id="temp")
    _bob_id, bob = add_member(app, "temp", "admin", "bob")
    token = await (await anon.post("/api/workspace/tokens", json={"name": "ci"},
                                   headers={**bob, "x-workeros-workspace": "temp"})).json()
    assert (await anon.post("/api/secrets/API_KEY", json={"value": "s3cr3t-value"},
                            headers={**bob, "x-workeros-workspace": "temp"})).status == 200
    assert (await anon.delete("/api/workspaces/temp", headers=bob)).status == 403
    resp = await anon.delete("/api/workspaces/temp", headers=alice)
    assert resp.status == 200 and await resp.json() == {"deleted": True, "id": "temp", "sha": None}
    assert not (settings.workspaces_dir / "temp").exists()
    assert not app[MANAGER].exists("temp")
    assert not (settings.system_dir / "secrets" / "temp.json").exists()
    assert app[IDENTITY].store.members("temp") == []
    assert (await anon.get("/api/workers", headers={"x-floom-token": token["token"]})).status == 401
    # a new workspace under the same id starts with no members and no secrets
    await _create(anon, bob, id="temp")
    members = await (await anon.get("/api/workspaces/temp/members", headers=bob)).json()
    assert [m["username"] for m in members["members"]] == ["bob"]


async def test_delete_default_workspace_is_409(anon):
    _, root = add_member(anon.server.app, "default", None, "root", admin=True)
    resp = await anon.delete("/api/workspaces/default", headers=root)
    assert resp.status == 409 and "default" in (await resp.json())["detail"]


async def test_select_workspace_sets_the_active_one(anon):
    _, alice = add_member(anon.server.app, "default", "member", "alice")
    await _create(anon, alice, id="second")
    resp = await anon.post("/api/workspaces/second/select", headers=alice)
    assert resp.status == 200 and (await resp.json())["active"] is True
    assert "floom_workspace=second" in resp.headers["Set-Cookie"]
    me = await (await anon.get("/auth/me", headers=alice)).json()
    assert me["workspace"]["id"] == "second" and me["role"] == "owner"
    assert (
        await anon.patch("/api/workspaces/second", json={"name": "Second"}, headers=alice)
    ).status == 200
    # the header still wins over the cookie
    me = await (
        await anon.get("/auth/me", headers={**alice, "x-workeros-workspace": "default"})
    ).json()
    assert me["workspace"]["id"] == "default" and me["role"] == "member"
    listed = await (await anon.get("/api/workspaces", headers=alice)).json()
    assert [w["id"] for w in listed["workspaces"] if w["active"]] == ["second"]
    assert listed["active_id"] == "second"


async def test_select_workspace_not_a_member_is_403(anon):
    app = anon.server.app
    await app[MANAGER].create("other")
    _, alice = add_member(app, "default", "member", "alice")
    resp = await anon.post("/api/workspaces/other/select", headers=alice)
    assert resp.status == 403 and "Set-Cookie" not in resp.headers


# -- members -----------------------------------------------------------------------------------
async def test_invite_member_pending_until_sign_in(anon):
    app = anon.server.app
    _, admin = add_member(app, "default", "admin", "alice")
    resp = await anon.post("/api/workspaces/default/members/invite",
                           json={"email": "Carol@Example.com", "role": "viewer"}, headers=admin)
    assert resp.status == 201, await resp.text()
    invite = await resp.json()
    assert (invite["status"], invite["user_id"], invite["email"]) == (
        "pending",
        None,
        "carol@example.com",
    )
    dup = await anon.post("/api/workspaces/default/members/invite",
                          json={"email": "carol@example.com"}, headers=admin)
    assert dup.status == 409
    app[IDENTITY].users.create("carol", email="carol@example.com", password=PASSWORD)
    login = await anon.post("/auth/login", json={"username": "carol", "password": PASSWORD})
    assert (await login.json())["role"] == "viewer"
    members = (await (await anon.get("/api/workspaces/default/members", headers=admin)).json())[
        "members"
    ]
    carol = next(m for m in members if m["email"] == "carol@example.com")
    assert carol["status"] == "active" and carol["username"] == "carol"


async def test_withdraw_pending_invite_by_email(anon):
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    await anon.post(
        "/api/workspaces/default/members/invite", json={"email": "d@example.com"}, headers=admin
    )
    resp = await anon.delete("/api/workspaces/default/members/d@example.com", headers=admin)
    assert resp.status == 200
    members = (await (await anon.get("/api/workspaces/default/members", headers=admin)).json())[
        "members"
    ]
    assert [m["username"] for m in members] == ["alice"]


@pytest.mark.parametrize("body", [{"email": "not-an-email"}, {"email": "a@b.c", "role": "god"}, {}])
async def test_invite_member_bad_body_is_400(anon, body):
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    resp = await anon.post("/api/workspaces/default/members/invite", json=body, headers=admin)
    assert resp.status == 400


async def test_last_owner_cannot_be_demoted_or_removed_over_http(anon):
    app = anon.server.app
    owner_id, owner = add_member(app, "default", "owner", "olivia")
    resp = await anon.patch(
        f"/api/workspaces/default/members/{owner_id}/role", json={"role": "admin"}, headers=owner
    )
    assert resp.status == 409 and "last owner" in (await resp.json())["detail"]
    resp = await anon.delete(f"/api/workspaces/default/members/{owner_id}", headers=owner)
    assert resp.status == 409
    _, admin = add_member(app, "default", "admin", "alice")
    resp = await anon.delete(f"/api/workspaces/default/members/{owner_id}", headers=admin)
    assert resp.status == 403  # admins do not remove owners
    assert (
        await anon.delete("/api/workspaces/default/members/usr_nobody", headers=owner)
    ).status == 404


# -- secrets -----------------------------------------------------------------------------------
SECRET_WORKER = WORKER_YML.format(name="mailer", title="Mailer").replace(
    "exec:\n", "exec:\n  secrets:\n    - SMTP_PASSWORD\n")


def _mine(listed: list[dict]) -> list[dict]:
    """Secrets other than those the workspace template's example workers declare."""
    return [s for s in listed if s["name"] in ("SMTP_PASSWORD", "API_KEY")]


async def test_secrets_are_listed_by_name_and_never_returned(anon, settings):
    app = anon.server.app
    _, admin = add_member(app, "default", "admin", "alice")
    resp = await anon.post(
        "/api/workers", json={"worker_yml": SECRET_WORKER, "run_py": "print(1)\n"}, headers=admin
    )
    assert resp.status == 201, await resp.text()
    detail = await (await anon.get("/api/workers/mailer", headers=admin)).json()
    assert detail["missing_secrets"] == ["SMTP_PASSWORD"]
    listed = _mine(await (await anon.get("/api/secrets", headers=admin)).json())
    assert listed == [{"name": "SMTP_PASSWORD", "status": "missing", "used_by": ["mailer"],
                       "updated_at": None, "updated_by": None}]
    value = "hunter2-very-secret-value"
    resp = await anon.post("/api/secrets/SMTP_PASSWORD", json={"value": value}, headers=admin)
    assert resp.status == 200
    assert value not in await resp.text()
    listed = _mine(await (await anon.get("/api/secrets", headers=admin)).json())
    assert listed[0]["status"] == "set" and listed[0]["updated_by"]
    assert (await (await anon.get("/api/workers/mailer", headers=admin)).json())[
        "missing_secrets"
    ] == []
    paused = await anon.post("/api/workers/mailer/pause", headers=admin)
    assert (await paused.json())["missing_secrets"] == []  # write responses see the store too
    config = await (await anon.get("/api/system/platform-config", headers=admin)).json()
    assert config["set_count"] == 1 and "SMTP_PASSWORD" not in config["missing"]
    test = await (await anon.post("/api/secrets/SMTP_PASSWORD/test", headers=admin)).json()
    assert test["ok"] is True and value not in str(test)
    resp = await anon.delete("/api/secrets/SMTP_PASSWORD", headers=admin)
    assert resp.status == 200
    assert (await anon.delete("/api/secrets/SMTP_PASSWORD", headers=admin)).status == 404
    config = await (await anon.get("/api/system/platform-config", headers=admin)).json()
    assert "SMTP_PASSWORD" in config["missing"] and config["all_required_set"] is False


@pytest.mark.parametrize(
    "name,body,status",
    [
        ("lower", {"value": "v"}, 400),
        ("PATH", {"value": "v"}, 400),
        ("LD_PRELOAD", {"value": "v"}, 400),
        ("FLOOM_SECRET", {"value": "v"}, 400),
        ("API_KEY", {"value": ""}, 400),
        ("API_KEY", {"value": "a\x00b"}, 400),
        ("API_KEY", {"value": "x" * (32 * 1024 + 1)}, 400),
        ("API_KEY", {"value": "x" * (200 * 1024)}, 413),
        ("API_KEY", {}, 400),
        ("API_KEY", {"value": 5}, 400),
    ],
)
async def test_set_secret_bad_input_is_refused(anon, settings, name, body, status):
    _, admin = add_member(anon.server.app, "default", "admin", "alice")
    resp = await anon.post(f"/api/secrets/{name}", json=body, headers=admin)
    assert resp.status == status and set(await resp.json()) == {"detail", "code"}
    assert [
        s
        for s in await (await anon.get("/api/secrets", headers=admin)).json()
        if s["status"] == "set"
    ] == []


async def test_secrets_need_admin(anon):
    _, member = add_member(anon.server.app, "default", "member", "bob")
    assert (await anon.get("/api/secrets", headers=member)).status == 200
    assert (
        await anon.post("/api/secrets/API_KEY", json={"value": "v"}, headers=member)
    ).status == 403
    assert (await anon.delete("/api/secrets/API_KEY", headers=member)).status == 403


async def test_no_credential_ever_reaches_a_workspace_repository(anon, settings):
    """Set a secret, mint tokens, sign in with a password, write to the workspace, then search
    its whole git history and working tree for every credential handed out."""
    app = anon.server.app
    app[IDENTITY].users.create("carol", email="carol@example.com", password=PASSWORD)
    _, admin = add_member(app, "default", "admin", "alice")
    secret_value = "sk-live-0123456789abcdef"
    await anon.post("/api/secrets/API_KEY", json={"value": secret_value}, headers=admin)
    personal = (await (await anon.post("/auth/tokens", json={"name": "p"}, headers=admin)).json())[
        "token"
    ]
    workspace = (await (await anon.post("/api/workspace/tokens", json={"name": "w"},
                                        headers=admin)).json())["token"]
    login = await anon.post("/auth/login", json={"username": "carol", "password": PASSWORD})
    session = login.cookies["floom_session"].value
    await anon.post("/api/workers", json={"worker_yml": SECRET_WORKER, "run_py": "print(1)\n"},
                    headers={"x-floom-token": workspace})
    await anon.patch("/api/workspaces/default", json={"description": "d"}, headers=admin)
    repo = settings.workspaces_dir / "default"
    history = git(repo, "log", "-p", "--all", "--format=%H %an %ae %s %b")
    tree = b"".join(
        p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    for value in (secret_value, personal, workspace, PASSWORD, session, SECRET,
                  admin["x-floom-token"]):
        assert value not in history, value
        assert value.encode() not in tree, value
    system = b"".join(p.read_bytes() for p in settings.system_dir.rglob("*") if p.is_file())
    for value in (secret_value, personal, workspace, PASSWORD, session, admin["x-floom-token"]):
        assert value.encode() not in system, value


# -- rate limits ------------------------------------------------------------------------------
async def test_list_endpoint_rate_limit_is_per_identity(aiohttp_client, settings):
    app = create_app(settings.replace(rate_list_per_minute=3))
    client = await aiohttp_client(app)
    _, alice = add_member(app, "default", "member", "alice")
    _, bob = add_member(app, "default", "member", "bob")
    for _ in range(3):
        assert (await client.get("/api/workers", headers=alice)).status == 200
    resp = await client.get("/api/contexts", headers=alice)
    assert resp.status == 429
    assert (
        int(resp.headers["Retry-After"]) >= 1
        and "Too many requests" in (await resp.json())["detail"]
    )
    assert (await client.get("/api/workers/nope", headers=alice)).status == 404  # not a list
    assert (await client.get("/api/workers", headers=bob)).status == 200


async def test_login_rate_limit_per_person_whatever_they_type(aiohttp_client, settings):
    app = create_app(settings.replace(rate_login_per_minute=2))
    client = await aiohttp_client(app)
    app[IDENTITY].users.create("alice", email="alice@example.com", password=PASSWORD)
    for name in ("alice", "ALICE"):
        resp = await client.post(
            "/auth/login", json={"username": name, "password": "wrong-password!"}
        )
        assert resp.status == 401
    resp = await client.post(
        "/auth/login", json={"username": " Alice@Example.com", "password": PASSWORD}
    )
    assert resp.status == 429 and "Retry-After" in resp.headers
    resp = await client.post("/auth/login", json={"username": "bob", "password": PASSWORD})
    assert resp.status == 401


async def test_login_rate_limit_per_client_ip(aiohttp_client, settings):
    """Per address the budget is four people's worth (an office shares one address)."""
    client = await aiohttp_client(create_app(settings.replace(rate_login_per_minute=2)))
    statuses = [
        (await client.post("/auth/login", json={"username": f"user{i}", "password": "x"})).status
        for i in range(9)
    ]
    assert statuses == [401] * 8 + [429]


async def test_device_flow_rate_limit_per_ip(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings.replace(rate_auth_per_minute=2)))
    for _ in range(2):
        assert (await client.post("/api/cli-auth/devices", json={})).status == 201
    resp = await client.post("/api/cli-auth/devices", json={})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


async def test_shared_secret_lists_every_workspace(client):
    await client.app[MANAGER].create("second")
    listed = (await (await client.get("/api/workspaces")).json())["workspaces"]
    assert [(w["id"], w["role"]) for w in listed] == [("default", "member"), ("second", "member")]
    assert (
        await client.get("/api/workers", headers={"x-workeros-workspace": "second"})
    ).status == 200
    assert SECRET


async def test_role_change_and_removal_apply_to_the_next_request(anon):
    app = anon.server.app
    _, owner = add_member(app, "default", "owner", "olivia")
    bob_id, bob = add_member(app, "default", "admin", "bob")
    assert (await anon.get("/api/workspace/tokens", headers=bob)).status == 200  # cached as admin
    await anon.patch(f"/api/workspaces/default/members/{bob_id}/role", json={"role": "viewer"},
                     headers=owner)
    resp = await anon.get("/api/workspace/tokens", headers=bob)
    assert resp.status == 403 and "you are viewer" in (await resp.json())["detail"]
    assert (
        await anon.delete(f"/api/workspaces/default/members/{bob_id}", headers=owner)
    ).status == 200
    resp = await anon.get("/api/workers", headers=bob)
    assert resp.status == 403 and (await resp.json())["detail"] == "Not a member of the workspace"

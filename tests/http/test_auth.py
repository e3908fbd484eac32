"""Credentials over HTTP: tokens in every header, the session cookie (login, logout, refresh),
magic links, /auth/me, the shared secret's role, and fail-closed resolution."""

from __future__ import annotations

import base64
import time

import pytest

from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY
from tests.conftest import SECRET, add_member, uid

PASSWORD = "correct horse battery staple"


def _user_with_password(app, role="member", username="alice"):
    identity = app[IDENTITY]
    user = identity.users.create(username, email=f"{username}@example.com", password=PASSWORD)
    if role:
        identity.members.add(uid(app, "default"), user.id, role)
    return user


def same_origin(client) -> dict[str, str]:
    """What a browser on the server's own pages sends with a write."""
    return {"Origin": f"http://{client.host}:{client.port}"}


async def _login(client, username="alice", password=PASSWORD):
    return await client.post("/auth/login", json={"username": username, "password": password})


@pytest.mark.parametrize("how", ["x-floom-token", "bearer", "basic", "api-prefix"])
async def test_token_authenticates_in_every_header(anon, how):
    _, headers = add_member(anon.server.app, "default", "viewer", "alice")
    value = headers["x-floom-token"]
    path = "/workers"
    if how == "bearer":
        headers = {"Authorization": f"Bearer {value}"}
    elif how == "basic":
        headers = {
            "Authorization": "Basic " + base64.b64encode(f"anyone:{value}".encode()).decode()
        }
    elif how == "api-prefix":
        path = "/api/v1/workers"
    resp = await anon.get(path, headers=headers)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("headers,detail", [
    ({}, "Missing credentials"),
    ({"x-floom-secret": "wrong"}, "Invalid credentials"),
    ({"x-floom-token": "floom_" + "A" * 43}, "Invalid credentials"),
    ({"Authorization": "Bearer nope"}, "Invalid credentials"),
    ({"Authorization": "Digest abc"}, "Unsupported Authorization scheme"),
    ({"Authorization": "Basic !!!"}, "malformed Basic"),
    # a wrong token is refused even though a valid secret is also present: no fall-through
    ({"x-floom-token": "floom_" + "A" * 43, "x-floom-secret": SECRET}, "Invalid credentials"),
])
async def test_wrong_credential_is_401(anon, headers, detail):
    resp = await anon.get("/api/workers", headers=headers)
    assert resp.status == 401
    assert detail in (await resp.json())["detail"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_wrong_token_with_valid_session_is_401(anon):
    _user_with_password(anon.server.app)
    assert (await _login(anon)).status == 200
    resp = await anon.get("/api/workers", headers={"x-floom-token": "floom_" + "B" * 43})
    assert resp.status == 401
    assert (await anon.get("/api/workers")).status == 200  # the cookie alone still works


async def test_login_sets_a_safe_session_cookie(anon):
    user = _user_with_password(anon.server.app)
    resp = await _login(anon)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user"]["id"] == user.id and body["role"] == "member"
    assert body["workspace"] == {"id": "default", "name": "default"}
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("floom_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    me = await (await anon.get("/auth/me")).json()
    assert me["user"]["username"] == "alice" and me["auth_method"] == "session"
    assert me["role"] == "member" and me["workspace"]["id"] == "default"


@pytest.mark.parametrize("username,password", [("alice", "wrong password!!"), ("nobody", PASSWORD)])
async def test_login_wrong_password_is_401(anon, username, password):
    _user_with_password(anon.server.app)
    resp = await _login(anon, username, password)
    assert resp.status == 401
    assert await resp.json() == {"detail": "Invalid username or password",
                                  "code": "unauthenticated"}
    assert "Set-Cookie" not in resp.headers


async def test_login_malformed_body_is_400(anon):
    resp = await anon.post("/auth/login", json={"username": "alice"})
    assert resp.status == 400 and "password" in (await resp.json())["detail"]


async def test_logout_ends_the_session(anon):
    _user_with_password(anon.server.app)
    await _login(anon)
    session = anon.session.cookie_jar.filter_cookies(anon.make_url("/"))["floom_session"].value
    resp = await anon.post("/auth/logout", headers=same_origin(anon))
    assert resp.status == 200 and (await resp.json()) == {"ok": True}
    assert (await anon.get("/auth/me")).status == 401
    resp = await anon.get("/auth/me", cookies={"floom_session": session})
    assert resp.status == 401 and "sign in again" in (await resp.json())["detail"]


async def test_refresh_session_rotates_the_cookie(anon):
    _user_with_password(anon.server.app)
    await _login(anon)
    old = anon.session.cookie_jar.filter_cookies(anon.make_url("/"))["floom_session"].value
    resp = await anon.post("/auth/refresh", json={}, headers=same_origin(anon))
    assert resp.status == 200
    new = anon.session.cookie_jar.filter_cookies(anon.make_url("/"))["floom_session"].value
    assert new != old
    assert (await anon.get("/auth/me")).status == 200
    assert (await anon.get("/auth/me", cookies={"floom_session": old})).status == 401


async def test_refresh_session_needs_a_user(anon):
    resp = await anon.post("/auth/refresh", headers={"x-floom-secret": SECRET})
    assert resp.status == 403 and "signed-in user" in (await resp.json())["detail"]


async def test_magic_link_signs_in_once(anon):
    _, headers = add_member(anon.server.app, "default", "admin", "alice")
    resp = await anon.post("/auth/magic-link", headers=headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["expires_in"] == 900
    path = body["url"].split("://", 1)[1].split("/", 1)[1]
    assert path.startswith("auth/magic/")
    resp = await anon.get("/" + path)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == "admin"
    assert "floom_session=" in resp.headers["Set-Cookie"]
    me = await (await anon.get("/api/auth/me")).json()
    assert me["user"]["username"] == "alice"
    anon.session.cookie_jar.clear()
    replay = await anon.get("/" + path)
    assert replay.status == 401 and "already used" in (await replay.json())["detail"]


async def test_magic_link_expired_is_refused(anon):
    _, headers = add_member(anon.server.app, "default", "member", "alice")
    url = (await (await anon.post("/auth/magic-link", headers=headers)).json())["url"]
    anon.server.app[IDENTITY].magic.now = lambda: time.time() + 3600
    resp = await anon.get(url.split(str(anon.server.port), 1)[1])
    assert resp.status == 401 and "expired" in (await resp.json())["detail"]


async def test_magic_link_public_url_setting(aiohttp_client, settings):
    app = create_app(settings.replace(public_url="https://floom.example.com/"))
    client = await aiohttp_client(app)
    _, headers = add_member(app, "default", "member", "alice")
    url = (await (await client.post("/auth/magic-link", headers=headers)).json())["url"]
    assert url.startswith("https://floom.example.com/auth/magic/")


@pytest.mark.parametrize("role,allowed", [("member", False), ("admin", True)])
async def test_shared_secret_role_follows_setting(aiohttp_client, settings, role, allowed):
    client = await aiohttp_client(create_app(settings.replace(shared_secret_role=role)),
                                  headers={"x-floom-secret": SECRET})
    resp = await client.post("/api/secrets/API_KEY", json={"value": "v"})
    assert (resp.status == 200) is allowed, await resp.text()
    if not allowed:
        assert resp.status == 403 and "admin" in (await resp.json())["detail"]
    me = await (await client.get("/auth/me")).json()
    assert me == {"user": None, "identity": "local-user", "auth_method": "secret",
                  "workspace": {"id": "default", "name": "default"}, "role": role, "token_id": None}


async def test_non_member_is_403_not_a_member(anon):
    _, headers = add_member(anon.server.app, "default", None, "stranger")
    resp = await anon.get("/api/workers", headers=headers)
    assert resp.status == 403
    assert await resp.json() == {"detail": "Not a member of the workspace",
                                  "code": "forbidden"}
    # the same for a workspace that does not exist: membership is checked before existence
    resp = await anon.get("/api/workers", headers={**headers, "x-workeros-workspace": "nope"})
    assert resp.status == 403


async def test_member_cannot_change_roles(anon):
    app = anon.server.app
    _, owner = add_member(app, "default", "owner", "olivia")
    bob, member = add_member(app, "default", "member", "bob")
    resp = await anon.patch(f"/api/workspaces/default/members/{bob}/role", json={"role": "admin"},
                            headers=member)
    assert resp.status == 403
    resp = await anon.patch(f"/api/workspaces/default/members/{bob}/role", json={"role": "admin"},
                            headers=owner)
    assert resp.status == 200 and (await resp.json())["role"] == "admin"


async def test_expired_and_revoked_tokens_are_401(anon):
    app = anon.server.app
    user, headers = add_member(app, "default", "member", "alice")
    assert (await anon.get("/api/workers", headers=headers)).status == 200
    identity = app[IDENTITY]
    value, _row = identity.tokens.mint(user_id=user, kind="personal", name="short", expires_days=1)
    identity.tokens.now = lambda: time.time() + 2 * 86400
    resp = await anon.get("/api/workers", headers={"x-floom-token": value})
    assert resp.status == 401 and "expired" in (await resp.json())["detail"]
    identity.tokens.now = time.time
    tokens = await (await anon.get("/auth/tokens", headers=headers)).json()
    first = next(t for t in tokens if t["name"] == "test")
    assert (await anon.delete(f"/auth/tokens/{first['id']}", headers=headers)).status == 200
    resp = await anon.get("/api/workers", headers=headers)
    assert resp.status == 401 and "revoked" in (await resp.json())["detail"]

"""A credential never mints or becomes a stronger one: every minting route (personal token,
session refresh, magic link, device approval, workspace token) walked with a capped, an expiring
and a workspace credential. The child's role, expiry and workspace are never above the parent's.
"""

from __future__ import annotations

import time

import pytest

from floom_git.http.keys import IDENTITY, MANAGER
from floom_git.services.actor import ROLES
from tests.conftest import add_member

DAY = 86400.0
MINTS = ("personal_token", "refresh", "magic_link", "device", "workspace_token")


async def _parent(anon, kind: str) -> tuple[dict[str, str], str | None, float | None, bool]:
    """(headers, role cap, expiry, bound to `default`) of a parent credential of `kind`. The
    user behind it is an admin of `default` and of `other`."""
    app = anon.server.app
    await app[MANAGER].create("other")
    user, _ = add_member(app, "default", "admin", "alice")
    app[IDENTITY].members.add(app[MANAGER].get("other").uid, user, "admin")
    tokens = app[IDENTITY].tokens
    if kind == "capped":
        value, row = tokens.mint(user_id=user, kind="personal", name="ro", role="viewer")
        return {"x-floom-token": value}, "viewer", None, False
    if kind == "expiring":
        value, row = tokens.mint(user_id=user, kind="personal", name="short", expires_days=1)
        return {"x-floom-token": value}, None, row.expires_at, False
    value, row = tokens.mint(
        user_id=user,
        kind="workspace",
        name="ci",
        role="admin",
        expires_days=1,
        workspace_id=app[MANAGER].get("default").uid,
    )
    return {"x-floom-token": value}, "admin", row.expires_at, True


async def _mint(anon, how: str, parent: dict[str, str]) -> tuple[int, dict[str, str] | None]:
    """Use `parent` on one minting route: (status, headers of the minted credential)."""
    if how == "personal_token":
        resp = await anon.post("/auth/tokens", json={"name": "child"}, headers=parent)
        return resp.status, {
            "x-floom-token": (await resp.json())["token"]
        } if resp.status == 201 else None
    if how == "workspace_token":
        resp = await anon.post("/api/workspace/tokens", json={"name": "child", "role": "admin"},
                               headers=parent)
        if resp.status == 403:  # asking for more than the parent has: try what it may have
            resp = await anon.post(
                "/api/workspace/tokens", json={"name": "child", "role": "viewer"}, headers=parent
            )
        return resp.status, {
            "x-floom-token": (await resp.json())["token"]
        } if resp.status == 201 else None
    if how == "refresh":
        resp = await anon.post("/auth/refresh", headers=parent)
        return resp.status, _cookie(resp)
    if how == "magic_link":
        resp = await anon.post("/auth/magic-link", headers=parent)
        if resp.status != 200:
            return resp.status, None
        url = (await resp.json())["url"]
        resp = await anon.get(url.split(str(anon.server.port), 1)[1])
        return resp.status, _cookie(resp)
    start = await (await anon.post("/api/cli-auth/devices", json={})).json()
    resp = await anon.post("/api/cli-auth/approve", json={"user_code": start["user_code"]},
                           headers=parent)
    if resp.status != 200:
        return resp.status, None
    resp = await anon.post("/auth/cli-exchange", json={"device_code": start["device_code"]})
    return resp.status, {
        "x-floom-token": (await resp.json())["token"]
    } if resp.status == 200 else None


def _cookie(resp) -> dict[str, str] | None:
    if resp.status != 200:
        return None
    anon_cookie = resp.cookies["floom_session"].value
    return {"Cookie": f"floom_session={anon_cookie}"}


async def _role(anon, headers: dict[str, str], ws: str) -> tuple[int, str | None]:
    anon.session.cookie_jar.clear()
    resp = await anon.get("/api/auth/me", headers={**headers, "x-workeros-workspace": ws})
    return resp.status, (await resp.json()).get("role") if resp.status == 200 else None


@pytest.mark.parametrize("how", MINTS)
@pytest.mark.parametrize("parent_kind", ["capped", "expiring", "workspace"])
async def test_derived_credential_is_never_stronger(anon, parent_kind, how):
    parent, cap, expires, bound = await _parent(anon, parent_kind)
    status, child = await _mint(anon, how, parent)
    if child is None:  # refusing to mint is always allowed; it must say why
        assert status == 403, status
        return
    assert status in (200, 201)
    anon.session.cookie_jar.clear()
    # role: never above the parent's cap, in any workspace
    for ws in ("default", "other"):
        status, role = await _role(anon, child, ws)
        assert status == 200
        parent_role = (await _role(anon, parent, ws))[1]
        if role is not None:
            assert parent_role is not None, f"{ws}: the child acts where the parent cannot"
            assert ROLES.index(role) <= ROLES.index(parent_role)
    if cap is not None:
        assert ROLES.index((await _role(anon, child, "default"))[1]) <= ROLES.index(cap)
    if bound:
        assert (await _role(anon, child, "other"))[1] is None
    # expiry: once the parent has expired, so has the child
    if expires is not None:
        anon.server.app[IDENTITY].set_clock(lambda: expires + 1)
        try:
            anon.session.cookie_jar.clear()
            assert (await anon.get("/api/auth/me", headers=parent)).status == 401
            resp = await anon.get("/api/auth/me", headers=child)
            assert resp.status == 401, f"{how} outlives its {parent_kind} parent"
        finally:
            anon.server.app[IDENTITY].reset_clock()


async def test_capped_token_cannot_mint_a_token_above_its_cap(anon):
    parent, *_ = await _parent(anon, "capped")
    resp = await anon.post("/auth/tokens", json={"name": "up", "role": "admin"}, headers=parent)
    assert resp.status == 403 and "capped at viewer" in (await resp.json())["detail"]
    child = (await (await anon.post("/auth/tokens", json={"name": "same"}, headers=parent)).json())
    assert child["role"] == "viewer" and child["expires_at"] is None
    resp = await anon.post("/api/workers/reload", headers={"x-floom-token": child["token"]})
    assert resp.status == 403


async def test_expiring_token_mints_tokens_that_expire_no_later(anon):
    parent, _cap, expires, _ = await _parent(anon, "expiring")
    resp = await anon.post(
        "/auth/tokens", json={"name": "long", "expires_days": 365}, headers=parent
    )
    assert resp.status == 201
    row = anon.server.app[IDENTITY].tokens.get((await resp.json())["id"])
    assert row.expires_at is not None and row.expires_at <= expires


async def test_password_session_keeps_the_users_full_authority(anon):
    """A session started with the password is the user's own authority: it mints uncapped,
    long-lived tokens (the user can always sign in again)."""
    identity = anon.server.app[IDENTITY]
    user = identity.users.create("alice", email="alice@example.com", password="a long passphrase")
    identity.members.add(anon.server.app[MANAGER].get("default").uid, user.id, "admin")
    resp = await anon.post(
        "/auth/login", json={"username": "alice", "password": "a long passphrase"}
    )
    assert resp.status == 200
    origin = {"Origin": f"http://{anon.host}:{anon.port}"}
    resp = await anon.post(
        "/auth/tokens", json={"name": "laptop", "expires_days": 365}, headers=origin
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["role"] is None
    assert identity.tokens.get(body["id"]).expires_at > time.time() + 300 * DAY

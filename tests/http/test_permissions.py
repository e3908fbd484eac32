"""One permission matrix for every route in the route table (read at test time, so routes added
later are covered) and for git over HTTP: each role, no credential, a user of another
workspace and another workspace's token, an owner's token capped at viewer, an expired token,
and an owner's session cookie used from another site. Every answer carries nosniff.

    perm    viewer  member  admin  owner   none  outsider / other workspace's token
    read      ok      ok     ok     ok     401        403 Not a member of the workspace
    write    403      ok     ok     ok     401        403
    admin    403     403     ok     ok     401        403
    owner    403     403    403     ok     401        403
    user      ok      ok     ok     ok     401        ok (the secret or a ws token may get 403)
    ops      403     403     ok     ok     401        ok: shows only the workspaces it administers
    run      403     403    403    403     401        403: only the run token of that run

    capped (owner's token capped at viewer): as viewer. expired token: 401 everywhere.
    cross_site (owner's cookie, text/plain, no Origin): GET as owner, every write 403.
"""

from __future__ import annotations

import base64
import re
import time

import aiohttp
import pytest

from floom_git.http import openapi
from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, MANAGER
from floom_git.services.actor import ROLES
from tests.conftest import SECRET, add_member

TEAM = "team"
NEEDS = {"read": "viewer", "write": "member", "admin": "admin", "owner": "owner"}
IDENTITIES = ("none", "viewer", "member", "admin", "owner", "secret", "outsider", "foreign_token",
              "capped", "expired", "cross_site")
ROLE_OF = {
    "viewer": "viewer",
    "member": "member",
    "admin": "admin",
    "owner": "owner",
    "secret": "member",
    "capped": "viewer",
    "cross_site": "owner",
}
SAFE = ("GET", "HEAD", "OPTIONS")
PARAMS = {"sha": "abcdef1", "path": "notes/a.md", "user_id": "usr_nobody", "name": "NOPE_NAME",
          "token": "nope", "id": "nope-id", "ws": TEAM}
NOT_MEMBER = "Not a member of the workspace"


def _fill(route) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if route.extra.get("workspace_param") == name:
            return TEAM
        return PARAMS.get(name, "nope")

    return re.sub(r"\{(\w+)(?::[^}]*)?\}", value, route.path)


async def _team(app) -> dict[str, dict[str, str]]:
    """Credentials of each identity against workspace `team`."""
    manager = app[MANAGER]
    await manager.create(TEAM)
    await manager.create("elsewhere")
    creds: dict[str, dict[str, str]] = {"none": {}, "secret": {"x-floom-secret": SECRET}}
    for role in ROLES:
        creds[role] = add_member(app, TEAM, role, f"user-{role}")[1]
    creds["outsider"] = add_member(app, "elsewhere", "owner", "outsider")[1]
    tokens = app[IDENTITY].tokens
    value, _ = tokens.mint(user_id="usr_x", kind="workspace", name="ci",
                           workspace_id=manager.get("elsewhere").uid, role="admin")
    creds["foreign_token"] = {"x-floom-token": value}
    boss, _ = add_member(app, TEAM, "owner", "boss")
    creds["capped"] = {"x-floom-token": tokens.mint(user_id=boss, kind="personal", name="ro",
                                                    role="viewer")[0]}
    creds["expired"] = {"x-floom-token": tokens.mint(user_id=boss, kind="personal", name="old",
                                                     expires_at=time.time() - 60)[0]}
    creds["cross_site"] = {"Cookie": f"floom_session={app[IDENTITY].sessions.create(boss)}"}
    return creds


def _expected(perm: str, who: str, method: str = "GET") -> str:
    """'ok' (passes auth), '401', '403', 'not-member' or 'cross-site'."""
    if who in ("none", "expired"):
        return "401"
    if who == "cross_site" and method not in SAFE:
        return "cross-site"
    if perm == "user":
        # personal tokens, sessions, device approval need a stored user, not a secret or a ws
        # token; a viewer-capped token may not create workspaces
        return "ok" if who not in ("foreign_token", "secret", "capped") else "any-authenticated"
    if perm == "run":  # a remote executor's reports: its run token only (tests/runtime/test_celery)
        return "403"
    if perm == "ops":  # admins of some workspace see those; server-wide needs a server admin
        return (
            "ok" if who in ("admin", "owner", "outsider", "foreign_token", "cross_site") else "403"
        )
    if who in ("outsider", "foreign_token"):
        return "not-member"
    return "ok" if ROLES.index(ROLE_OF[who]) >= ROLES.index(NEEDS[perm]) else "403"


@pytest.mark.parametrize("who", IDENTITIES)
async def test_every_route_follows_the_permission_matrix(aiohttp_client, settings, who):
    app = create_app(settings)
    client = await aiohttp_client(app)
    creds = (await _team(app))[who]
    routes = [r for r in app[openapi.ROUTES_KEY] if r.perm not in ("public", "git")]
    assert {r.perm for r in routes} <= set(NEEDS) | {"user", "ops", "run"}, \
        "a route declares an unknown perm"
    # destructive owner routes last, so earlier checks still find the workspace
    routes.sort(key=lambda r: (r.perm == "owner", r.method == "DELETE"))
    wrong = []
    timeout = aiohttp.ClientTimeout(total=30)
    for route in routes:
        headers = dict(creds)
        if not route.extra.get("workspace_param"):
            headers["x-workeros-workspace"] = TEAM
        kwargs: dict = {"json": {}} if route.method in ("POST", "PUT", "PATCH") else {}
        if who == "cross_site" and route.method not in SAFE:  # what a form on another site sends
            kwargs = {"data": b"{}", "headers": {**headers, "Content-Type": "text/plain"}}
        else:
            kwargs["headers"] = headers
        async with client.request(route.method, _fill(route), timeout=timeout, **kwargs) as resp:
            status = resp.status
            detail = (await resp.json()).get("detail") if status in (401, 403) else None
            if resp.headers.get("X-Content-Type-Options") != "nosniff":
                wrong.append(f"{route.method} {route.path}: no X-Content-Type-Options: nosniff")
        client.session.cookie_jar.clear()  # a route's Set-Cookie must not change the next identity
        expected = _expected(route.perm, who, route.method)
        ok = {
            "ok": status not in (401, 403),
            "any-authenticated": status != 401,
            "401": status == 401,
            "403": status == 403,
            "not-member": status == 403 and detail == NOT_MEMBER,
            "cross-site": status == 403 and (detail or "").startswith("Cross-site request refused"),
        }[expected]
        if not ok:
            wrong.append(f"{route.method} {route.path} (perm {route.perm}): expected {expected}, "
                         f"got {status} {detail or ''}")
    assert not wrong, f"{who}:\n" + "\n".join(wrong)


def _basic(headers: dict[str, str]) -> dict[str, str]:
    value = headers.get("x-floom-token") or headers.get("x-floom-secret")
    if value is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"git:{value}".encode()).decode()}


@pytest.mark.parametrize("who", IDENTITIES)
@pytest.mark.parametrize(
    "service,perm", [("git-upload-pack", "read"), ("git-receive-pack", "write")]
)
async def test_git_follows_the_permission_matrix(aiohttp_client, settings, who, service, perm):
    if not any(r.perm == "git" for r in create_app(settings)[openapi.ROUTES_KEY]):
        pytest.skip("git over HTTP is not wired in")
    app = create_app(settings)
    client = await aiohttp_client(app)
    creds = (await _team(app))[who]
    resp = await client.get(f"/git/{TEAM}.git/info/refs", params={"service": service},
                            headers=_basic(creds))
    await resp.read()
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    expected = "401" if who == "cross_site" else _expected(perm, who)  # git never reads cookies
    if expected == "ok":
        assert resp.status == 200
    elif expected == "401":
        assert resp.status == 401 and "Basic" in resp.headers["WWW-Authenticate"]
    elif expected == "not-member":
        assert resp.status == 404  # git hides workspaces the caller cannot see
    else:
        assert resp.status == 403

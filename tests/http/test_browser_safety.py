"""What a browser may do with the API origin: user content is served so it cannot run (sandboxing
CSP, a download unless the type is on a short safe list, nosniff on every response), and writes
signed in with the session cookie are refused unless they are same-origin JSON (or multipart)."""

from __future__ import annotations

import pytest
from aiohttp import FormData

from floom_git.http.keys import IDENTITY
from tests.conftest import add_member, uid
from tests.http.test_runs import make_worker, trigger, wait_run

SANDBOX = "default-src 'none'; sandbox"
PASSWORD = "a long passphrase"


@pytest.mark.parametrize(
    "path,inline",
    [
        ("evil.xml", False),
        ("evil.html", False),
        ("evil.svg", False),
        ("evil.js", False),
        ("notes.md", False),
        ("evil.xhtml", False),
        ("data.bin", False),
        ("notes.txt", True),
        ("pic.png", True),
        ("pic.jpg", True),
        ("doc.pdf", True),
        ("data.json", True),
    ],
)
async def test_context_file_is_served_so_it_cannot_run(client, path, inline):
    assert (await client.post("/api/contexts/notes")).status == 201
    resp = await client.put(f"/api/contexts/notes/files/{path}", data=b"<script>alert(1)</script>",
                            headers={"Content-Type": "application/octet-stream"})
    assert resp.status in (200, 201), await resp.text()
    resp = await client.get(f"/api/contexts/notes/files/{path}")
    assert resp.status == 200
    assert resp.headers["Content-Security-Policy"] == SANDBOX
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    kind = resp.headers["Content-Disposition"].split(";")[0]
    assert kind == ("inline" if inline else "attachment")
    assert f'filename="{path}"' in resp.headers["Content-Disposition"]


ARTIFACTS = """import json, os
os.makedirs("out", exist_ok=True)
open("out/page.html", "w").write("<script>alert(1)</script>")
open("out/chart.png", "wb").write(b"\\x89PNG\\r\\n")
json.dump({"status": "success", "outputs": {}}, open("result.json", "w"))
"""


async def test_run_artifacts_logs_and_downloads_are_sandboxed(client):
    await make_worker(client, "artifacter", ARTIFACTS)
    rid = (await trigger(client, "artifacter"))["run_id"]
    run = await wait_run(client, rid)
    arts = {a["path"]: a["id"] for a in run["artifacts"]}
    expected = {"out/page.html": "attachment", "out/chart.png": "inline"}
    for path, kind in expected.items():
        resp = await client.get(f"/api/runs/{rid}/artifacts/{arts[path]}/download")
        assert resp.status == 200
        assert resp.headers["Content-Security-Policy"] == SANDBOX
        assert resp.headers["Content-Disposition"].startswith(kind)
    for url in (
        f"/api/runs/{rid}/download",
        f"/api/runs/{rid}/logs",
        "/api/workers/artifacter/bundle.zip",
        "/api/workspace",
        "/api/runs/export.csv",
    ):
        resp = await client.get(url)
        assert resp.status == 200, url
        assert resp.headers["Content-Security-Policy"] == SANDBOX, url
        assert resp.headers["X-Content-Type-Options"] == "nosniff", url


async def test_every_response_says_nosniff(client, anon):
    for resp in (await client.get("/api/workers"), await anon.get("/api/workers"),
                 await client.get("/api/workers/nope"), await anon.get("/healthz"),
                 await anon.get("/openapi.json"), await anon.get("/docs"),
                 await anon.get("/no/such/route"), await anon.get("/git/default.git/info/refs")):
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", resp.url


# -- cross-site requests with the session cookie ------------------------------------------------
@pytest.fixture
async def browser(anon):
    """A client signed in as an admin of `default` through the password (cookie jar)."""
    identity = anon.server.app[IDENTITY]
    user = identity.users.create("alice", email="alice@example.com", password=PASSWORD)
    identity.members.add(uid(anon.server.app, "default"), user.id, "admin")
    resp = await anon.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return anon


def _origin(client) -> str:
    return f"http://{client.host}:{client.port}"


INVITE = (
    "POST",
    "/api/workspaces/default/members/invite",
    b'{"email": "eve@example.com", "role": "admin"}',
)
MINT = ("POST", "/auth/tokens", b'{"name": "stolen"}')


@pytest.mark.parametrize("method,path,body", [INVITE, MINT], ids=["invite", "mint"])
@pytest.mark.parametrize("headers,why", [
    ({"Content-Type": "text/plain"}, "Content-Type"),
    ({"Content-Type": "text/plain", "Origin": "ORIGIN"}, "Content-Type"),
    ({"Content-Type": "application/x-www-form-urlencoded", "Origin": "ORIGIN"}, "Content-Type"),
    ({"Content-Type": "application/json"}, "Origin header"),
    ({"Content-Type": "application/json", "Origin": "https://evil.example"}, "evil.example"),
    ({"Content-Type": "application/json", "Origin": "null"}, "Origin header"),
    ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, "Origin header"),
])
async def test_cross_site_write_with_the_session_cookie_is_403(
    browser, method, path, body, headers, why
):
    headers = {k: v.replace("ORIGIN", _origin(browser)) for k, v in headers.items()}
    resp = await browser.request(method, path, data=body, headers=headers)
    assert resp.status == 403
    detail = (await resp.json())["detail"]
    assert detail.startswith("Cross-site request refused") and why in detail
    members = await (await browser.get("/api/workspaces/default/members")).json()
    assert "eve@example.com" not in str(members)
    tokens = await (await browser.get("/auth/tokens")).json()
    assert "stolen" not in str(tokens)


@pytest.mark.parametrize("method,path,body", [INVITE, MINT], ids=["invite", "mint"])
@pytest.mark.parametrize("same", ["origin", "sec-fetch-site"])
async def test_same_origin_write_with_the_session_cookie_works(browser, method, path, body, same):
    headers = {"Content-Type": "application/json"}
    headers.update(
        {"Origin": _origin(browser)} if same == "origin" else {"Sec-Fetch-Site": "same-origin"}
    )
    resp = await browser.request(method, path, data=body, headers=headers)
    assert resp.status == 201, await resp.text()


async def test_documented_multipart_upload_with_the_session_cookie_works(browser):
    origin = {"Origin": _origin(browser)}
    assert (await browser.post("/api/contexts/docs", json={}, headers=origin)).status == 201
    form = FormData()
    form.add_field("file", b"hello", filename="a.txt")
    resp = await browser.post("/api/contexts/docs/upload", data=form, headers=origin)
    assert resp.status == 201, await resp.text()
    form = FormData()
    form.add_field("file", b"hello", filename="a.txt")
    resp = await browser.post("/api/workspaces", data=form, headers=origin)
    assert resp.status == 403 and "application/json" in (await resp.json())["detail"]


async def test_token_and_secret_writes_need_no_origin(client, anon):
    _, token = add_member(anon.server.app, "default", "member", "bob")
    for headers in (token, {}):  # `client` sends the shared secret
        resp = await (anon if headers else client).post(
            "/api/workers/reload", data=b"", headers={**headers, "Content-Type": "text/plain"})
        assert resp.status == 200, await resp.text()


async def test_login_from_another_site_is_refused(anon):
    identity = anon.server.app[IDENTITY]
    identity.users.create("alice", password=PASSWORD)
    body = b'{"username": "alice", "password": "a long passphrase"}'
    resp = await anon.post("/auth/login", data=body, headers={"Content-Type": "text/plain"})
    assert resp.status == 403
    resp = await anon.post("/auth/login", data=body, headers={"Content-Type": "application/json",
                                                              "Origin": "https://evil.example"})
    assert resp.status == 403 and "floom_session" not in resp.cookies
    resp = await anon.post("/auth/login", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200  # a script or the CLI sends no Origin

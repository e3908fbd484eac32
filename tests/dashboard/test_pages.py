"""Every dashboard page through aiohttp's client (no JavaScript): status and content, sign-in
redirects, the reading that works without scripts, role-dependent forms, escaping, and the
same-origin rule on form posts."""

from __future__ import annotations

import asyncio
import re

import pytest
from yarl import URL

from floom_git.dashboard.routes import PAGES
from floom_git.http.keys import IDENTITY
from tests.dashboard.conftest import PASSWORD, make_user, member_key, sign_in

READ_PAGES = [
    ("/ui/", "Recent runs"),
    ("/ui/workers", "Word count"),
    ("/ui/workers?q=brief", "Research brief"),
    ("/ui/workers/word-count", "Runs per day, last 30 days"),
    ("/ui/workers/word-count/files/run.py", "inputs.json"),
    ("/ui/workers/word-count/versions", "workspace: create default"),
    ("/ui/workers/word-count/run", "The text to count."),
    ("/ui/runs", "Runs"),
    ("/ui/approvals", "No pending approvals."),
    ("/ui/approvals?status=all", "Approvals"),
    ("/ui/issues", "No issues."),
    ("/ui/new/issue", "New issue"),
    ("/ui/new/worker", "worker.yml"),
    ("/ui/contexts", "company"),
    ("/ui/contexts/company", "about.md"),
    ("/ui/contexts/company/files/about.md", "about.md"),
    ("/ui/settings", "Members"),
    ("/ui/account", "Create a sign-in link"),
    ("/ui/device?code=BCDF-GHJK", "BCDF-GHJK"),
    ("/docs", "/workers/{id}/rollback/{sha}"),
]


@pytest.mark.parametrize(("path", "text"), READ_PAGES)
async def test_get_page_signed_in_answers_html(signed_in, path, text):
    resp = await signed_in.get(path)
    body = await resp.text()
    assert resp.status == 200, body[:500]
    assert resp.content_type == "text/html"
    assert text in body
    assert "Content-Security-Policy" in resp.headers
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), "inline script on a page"


async def test_get_every_page_route_is_html_or_a_redirect_to_sign_in(visitor):
    """The spec test leaves dashboard pages out of /openapi.json; here each GET page proves it is
    a page: HTML for anyone (sign-in, /docs) or a redirect to sign in."""
    for page in PAGES:
        if page.method != "GET":
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", "x-1", page.path)
        resp = await visitor.get(path, allow_redirects=False)
        if page.perm is None:
            assert resp.status in (200, 302), (path, resp.status)
        else:
            assert resp.status == 303, (path, resp.status)
            assert resp.headers["Location"].startswith("/ui/login?next="), path


async def test_get_page_signed_out_redirects_to_sign_in_and_back(visitor, server, origin):
    anon = visitor
    resp = await anon.get("/ui/runs?status=failed", allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert location.path == "/ui/login" and location.query["next"] == "/ui/runs?status=failed"
    make_user(server, "ada")
    resp = await anon.post("/ui/login", data={"username": "ada", "password": "wrong",
                                              "next": "/ui/runs?status=failed"},
                           headers={"Origin": origin})
    assert resp.status == 401 and "Invalid" in await resp.text()
    resp = await anon.post("/ui/login", data={"username": "ada", "password": PASSWORD,
                                              "next": "/ui/runs?status=failed"},
                           headers={"Origin": origin}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/runs?status=failed"
    cookie = resp.cookies["floom_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
async def test_post_login_next_off_site_goes_home(visitor, server, origin, target):
    anon = visitor
    make_user(server, "ada")
    resp = await anon.post("/ui/login", data={"username": "ada", "password": PASSWORD,
                                              "next": target},
                           headers={"Origin": origin}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/"


async def test_get_run_page_without_javascript_shows_logs_and_outputs(
    signed_in, origin, api_headers
):
    resp = await signed_in.post("/ui/workers/word-count/run",
                                data={"in.text": "one two three", "in.min_length": ""},
                                headers={"Origin": origin}, allow_redirects=False)
    assert resp.status == 303
    run_path = resp.headers["Location"]
    run_id = run_path.rsplit("/", 1)[1]
    for _ in range(300):
        status = (await (await signed_in.get(f"/api/runs/{run_id}", headers=api_headers)).json())[
            "status"
        ]
        if status in ("completed", "failed"):
            break
        await asyncio.sleep(0.1)
    body = await (await signed_in.get(run_path)).text()
    assert "completed" in body and "counted 3 words" in body
    assert re.search(r"<dt class=\"mono\">words</dt><dd><code>3</code></dd>", body)
    assert "data-events" not in body  # a finished run opens no stream
    listing = await (await signed_in.get("/ui/runs?worker_id=word-count&status=completed")).text()
    assert run_id in listing


async def test_post_run_form_with_bad_input_shows_the_form_again(signed_in, origin):
    resp = await signed_in.post("/ui/workers/word-count/run",
                                data={"in.text": "x", "in.min_length": "many"},
                                headers={"Origin": origin})
    body = await resp.text()
    assert resp.status == 400
    assert "inputs.min_length: expected a number" in body
    assert 'value="many"' in body  # what was typed stays


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {},  # no Origin, no Sec-Fetch-Site: not a browser's form post from these pages
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
])
async def test_post_form_not_from_these_pages_is_refused(signed_in, api_headers, headers):
    resp = await signed_in.post("/ui/new/issue", data={"title": "planted"}, headers=headers)
    assert resp.status == 403
    assert "Cross-site request refused" in await resp.text()
    issues = await (await signed_in.get("/api/workspace/issues", headers=api_headers)).json()
    assert issues["issues"] == []


async def test_post_form_with_same_origin_fetch_metadata_is_accepted(signed_in):
    resp = await signed_in.post("/ui/new/issue", data={"title": "From the page"},
                                headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/issues/ISSUE-0001"


async def test_viewer_reads_without_write_forms_and_cannot_post(aiohttp_client, server, origin):
    make_user(server, "vic", "viewer")
    client = await aiohttp_client(server)
    await sign_in(client, "vic", origin)
    body = await (await client.get("/ui/workers/word-count")).text()
    assert "Word count" in body and "/pause" not in body
    assert "New worker" not in await (await client.get("/ui/workers")).text()
    resp = await client.post("/ui/workers/word-count/pause", headers={"Origin": origin})
    assert resp.status == 403 and "Requires the member role" in await resp.text()
    settings = await (await client.get("/ui/settings")).text()
    assert "Members" in settings and "New workspace token" not in settings


async def test_user_content_is_escaped_never_rendered(signed_in, origin, api_headers):
    hostile = '<img src=x onerror="alert(1)">'
    resp = await signed_in.post(
        "/ui/new/issue",
        data={"title": hostile, "body": "<script>x</script>"},
        headers={"Origin": origin},
    )
    body = await resp.text()
    assert hostile not in body and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in body
    assert "<script>x</script>" not in body
    await signed_in.put("/api/contexts/company/files/evil.html", data=b"<script>alert(2)</script>",
                        headers={**api_headers, "Content-Type": "text/html"})
    page = await (await signed_in.get("/ui/contexts/company/files/evil.html")).text()
    assert "<script>alert(2)</script>" not in page and "alert" in page


async def test_workspace_switcher_selects_only_workspaces_you_belong_to(signed_in, origin, server,
                                                                         api_headers):
    resp = await signed_in.post("/api/workspaces", json={"id": "team", "name": "Team"},
                                headers=api_headers)
    assert resp.status == 201, await resp.text()
    resp = await signed_in.post("/ui/workspaces/select", data={"workspace": "team"},
                                headers={"Origin": origin})
    assert resp.status == 403 and "Not a member" in await resp.text()
    ada = server.app[IDENTITY].users.find("ada")
    server.app[IDENTITY].members.add(member_key(server, "team"), ada.id, "viewer")
    resp = await signed_in.post("/ui/workspaces/select", data={"workspace": "team"},
                                headers={"Origin": origin}, allow_redirects=False)
    assert resp.status == 303 and resp.cookies["floom_workspace"].value == "team"
    body = await (await signed_in.get("/ui/")).text()
    assert "<h1>Team</h1>" in body and "you are viewer" in body
    assert "word-count" in await (await signed_in.get("/ui/workers")).text()  # from the template

"""The rest of the dashboard in a real browser: issues, contexts with an upload, settings (a
token shown once, a secret by name, an invite), the device-login page a CLI prints, a one-time
sign-in link used in a second browser, /docs drawn offline by Swagger UI; and a form on another
origin posting into the dashboard with the user's cookie, refused."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, web

from tests.dashboard.conftest import PASSWORD, make_user, shot


async def _signed_in_page(browser: Any, origin: str, username: str = "ada") -> Any:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(origin + "/ui/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url(origin + "/ui/")
    return page


async def _api(http: ClientSession, origin: str, token: str, method: str, path: str,
               **kw: Any) -> Any:
    async with http.request(method, origin + path, headers={"x-floom-token": token}, **kw) as resp:
        assert resp.status < 300, (method, path, resp.status, await resp.text())
        return await resp.json()


async def test_browser_issues_contexts_settings(browser, server, origin, tmp_path):
    _, token = make_user(server, "ada")
    page = await _signed_in_page(browser, origin)
    await shot(page, "20-overview")
    async with ClientSession() as http:
        # issues: create, comment, close
        await page.click("nav >> text=Issues")
        await page.click("text=New issue")
        await page.fill("#title", "Word count ignores hyphens")
        await page.fill("#body", "Try <b>well-known</b>: it counts one word.")
        await page.fill("#labels", "bug, counting")
        await page.click("button:has-text('Create issue')")
        await page.wait_for_selector("h1:has-text('Word count ignores hyphens')")
        assert await page.is_visible(
            "text=Try <b>well-known</b>: it counts one word."
        )  # text, not markup
        await page.fill("#comment", "Confirmed on main.")
        await page.click("button:has-text('Comment')")
        await page.wait_for_selector(".comment:has-text('Confirmed on main.')")
        await page.click("button:has-text('Close issue')")
        await page.wait_for_selector(".notice:has-text('is closed')")
        await shot(page, "21-issue")
        issue = (await _api(http, origin, token, "GET", "/api/workspace/issues"))["issues"][0]
        assert issue["status"] == "closed" and issue["comment_count"] == 1
        await page.click("nav >> text=Issues")
        await shot(page, "22-issues")

        # contexts: upload two files into the template's pack, then read one
        upload_a, upload_b = tmp_path / "pricing.md", tmp_path / "page.html"
        upload_a.write_text("# Pricing\n\nThree plans.\n")
        upload_b.write_text("<script>alert('never runs')</script>\n")
        await page.click("nav >> text=Contexts")
        await page.click("text=company")
        await page.set_input_files("#file", [str(upload_a), str(upload_b)])
        await page.fill("#path_prefix", "sales")
        await page.click("button:has-text('Upload')")
        await page.wait_for_selector(".notice:has-text('Uploaded 2 files')")
        await shot(page, "23-context")
        await page.click("text=sales/page.html")
        assert await page.is_visible(".hl:has-text(\"alert('never runs')\")")
        await shot(page, "24-context-file")
        detail = await _api(http, origin, token, "GET", "/api/contexts/company")
        assert {"sales/pricing.md", "sales/page.html"} <= {f["path"] for f in detail["files"]}

        # settings: a workspace token shown once, a secret by name, an invite
        await page.click("nav >> text=Settings")
        await page.fill("#token-name", "ci")
        await page.select_option("#token-role", "viewer")
        await page.click("button:has-text('Create token')")
        value = (await page.inner_text("#new-token")).strip()
        assert value.startswith("floom_")
        await shot(page, "25-settings-token")
        async with http.get(origin + "/api/workers", headers={"x-floom-token": value}) as resp:
            assert resp.status == 200  # the value shown works
        await page.goto(origin + "/ui/settings")
        assert await page.query_selector("#new-token") is None  # and is never shown again
        assert value not in await page.content()
        await page.fill("#secret-name", "OPENAI_API_KEY")
        await page.fill("#secret-value", "sk-test-value")
        await page.click("button:has-text('Save')")
        await page.wait_for_selector(".notice:has-text('Secret OPENAI_API_KEY saved')")
        assert "sk-test-value" not in await page.content()
        await page.fill("#email", "grace@example.com")
        await page.click("button:has-text('Invite')")
        await page.wait_for_selector("td:has-text('grace@example.com')")
        await shot(page, "26-settings")
        secrets = await _api(http, origin, token, "GET", "/api/secrets")
        assert {"name": "OPENAI_API_KEY", "status": "set"}.items() <= \
            next(s for s in secrets if s["name"] == "OPENAI_API_KEY").items()


async def test_browser_device_login_magic_link_and_docs(browser, server, origin):
    make_user(server, "ada")
    async with ClientSession() as http:
        async with http.post(
            origin + "/api/cli-auth/devices", json={"client_name": "laptop"}
        ) as resp:
            start = await resp.json()
        page = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
        await page.goto(start["verification_url"])  # signed out: sign in, then back to the code
        assert "/ui/login" in page.url
        await page.fill("#username", "ada")
        await page.fill("#password", PASSWORD)
        await page.click("button:has-text('Sign in')")
        await page.wait_for_selector("text=Sign in a command-line client")
        await page.fill("#user_code", start["user_code"])
        await shot(page, "30-device")
        await page.click("button:has-text('Approve')")
        await page.wait_for_selector(".notice:has-text('Approved')")
        await shot(page, "31-device-approved")
        async with http.post(origin + "/api/auth/cli-exchange",
                             json={"device_code": start["device_code"]}) as resp:
            assert resp.status == 200
            assert (await resp.json())["user"]["username"] == "ada"

        # a one-time sign-in link, made here and used in another browser
        await page.goto(origin + "/ui/account")
        await page.click("button:has-text('Create a sign-in link')")
        link = (await page.inner_text("#magic-link")).strip()
        await shot(page, "32-account-link")
        other = await (await browser.new_context()).new_page()
        await other.goto(link)
        await other.click("button:has-text('Sign in')")
        await other.wait_for_url(origin + "/ui/")
        assert await other.is_visible("text=Signed in with a one-time link")
        await other.goto(link)
        await other.click("button:has-text('Sign in')")
        assert await other.is_visible("text=already used")  # one time only

        # /docs: Swagger UI from the package draws /openapi.json; nothing leaves this server
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(origin + "/docs")
        await page.wait_for_selector(".opblock-tag", timeout=60_000)
        await page.click(".opblock-tag:has-text('workers')")
        await page.wait_for_selector(
            ".opblock-summary-path:has-text('/workers/{id}/rollback/{sha}')"
        )
        await shot(page, "33-docs")
        assert requested and all(url.startswith(origin) for url in requested), requested


async def test_browser_cross_origin_form_post_is_refused(browser, server, origin, aiohttp_server):
    """A page on another port of the same host is the same site, so SameSite=Lax still sends the
    session cookie with its form post; the Origin check is what refuses it."""
    _, token = make_user(server, "ada")
    page = await _signed_in_page(browser, origin)

    async def evil(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f"<form id='f' method='post' action='{origin}/ui/new/issue'>"
            "<input name='title' value='planted by another site'></form>"
            "<script>document.getElementById('f').submit()</script>"))

    other = web.Application()
    other.router.add_get("/", evil)
    attacker = await aiohttp_server(other)
    await page.goto(str(attacker.make_url("/")))
    await page.wait_for_url(origin + "/ui/new/issue")
    assert await page.is_visible("text=Cross-site request refused")
    await shot(page, "40-cross-origin-refused")
    async with ClientSession() as http:
        issues = await _api(http, origin, token, "GET", "/api/workspace/issues")
    assert issues["issues"] == []

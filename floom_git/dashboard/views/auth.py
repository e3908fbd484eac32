"""Signing in and out (password, one-time sign-in links), the account page, and the device-login
verification page a `floom-git login` prints: each runs the API's own sign-in handler."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import answer_cookies, call, local_path
from floom_git.dashboard.render import redirect, render
from floom_git.errors import FloomError, InvalidInput, Unauthenticated
from floom_git.http.handlers import auth as api
from floom_git.http.keys import ACTOR
from floom_git.schemas.identity import DeviceDecision, LoginIn, MagicLinkOut


def _next(request: web.Request) -> str:
    return local_path(request.query.get("next"))


async def login_form(request: web.Request) -> web.Response:
    """The sign-in page: user name or email and password, or a one-time sign-in link."""
    if request.get(ACTOR) is not None and "next" in request.query:
        raise web.HTTPSeeOther(_next(request))
    return render(request, "login.html", next=_next(request), error=None, username="")


async def login(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    target = local_path(form.get("next"))
    username = forms.text(form, "username", 320)
    try:
        await call(request, api.login, LoginIn(username=username,
                                               password=forms.text(form, "password", 1024)))
    except FloomError as exc:
        return render(
            request,
            "login.html",
            http_status=401 if isinstance(exc, Unauthenticated) else 400,
            next=target,
            error=exc.message,
            username=username,
        )
    response = web.HTTPSeeOther(target)
    answer_cookies(request, response)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await call(request, api.logout)
    response = redirect("/ui/login", "Signed out.")
    answer_cookies(request, response)
    raise response


def _magic_token(link: str) -> str:
    token = link.strip().rstrip("/").rsplit("/", 1)[-1]
    if not token or "." not in token or not token.isascii() or len(token) > 512:
        raise InvalidInput("link: paste the whole sign-in link (…/auth/magic/<token>)")
    return token


async def magic_paste(request: web.Request) -> web.StreamResponse:
    """A pasted sign-in link goes to its confirmation page."""
    form = await forms.fields(request)
    try:
        token = _magic_token(forms.text(form, "link", 2048))
    except InvalidInput as exc:
        return render(request, "login.html", http_status=400, next="/ui/", error=exc.message,
                      username="")
    raise web.HTTPSeeOther(f"/ui/magic/{quote(token, safe='')}")


async def magic_confirm(request: web.Request) -> web.Response:
    """Links are used by a click on this page's button, not by opening them: a mail scanner
    that fetches every link must not spend a one-time link."""
    return render(request, "magic.html", token=request.match_info["token"])


async def magic_use(request: web.Request) -> web.StreamResponse:
    await call(request, api.magic_consume)
    response = redirect("/ui/", "Signed in with a one-time link.")
    answer_cookies(request, response)
    raise response


async def account(request: web.Request) -> web.Response:
    return render(request, "account.html", link=None, base_url=api.base_url(request))


async def new_magic_link(request: web.Request) -> web.Response:
    made = await call(request, api.magic_link, type_=MagicLinkOut)
    token = made.url.rsplit("/", 1)[-1]
    base = made.url[: made.url.index("/auth/magic/")]
    return render(request, "account.html", link=f"{base}/ui/magic/{token}",
                  api_link=made.url, expires_in=made.expires_in, base_url=api.base_url(request))


async def device_page(request: web.Request) -> web.Response:
    """Where `floom-git login` sends people: the code it printed, to approve or deny."""
    code = request.query.get("code") or request.query.get("user_code") or ""
    return render(request, "device.html", code=code[:20], outcome=None, error=None)


async def device_decide(request: web.Request) -> web.Response:
    form = await forms.fields(request)
    code = forms.text(form, "user_code", 40).strip()
    approve = form.get("decision") == "approve"
    try:
        await call(request, api.device_approve if approve else api.device_deny,
                   DeviceDecision(user_code=code))
    except FloomError as exc:
        return render(request, "device.html", http_status=400, code=code, outcome=None,
                      error=exc.message)
    return render(request, "device.html", code=code, outcome="approved" if approve else "denied",
                  error=None)

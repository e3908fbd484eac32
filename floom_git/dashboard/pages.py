"""What wraps every dashboard view: sign-in and role checks before it runs, the same-origin rule
on form posts, and domain errors shown as an HTML page with their status (never a traceback)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from floom_git.dashboard.access import enter, prepare_twin, to_sign_in, viewer
from floom_git.dashboard.render import render
from floom_git.errors import FloomError
from floom_git.http.errors import status_for
from floom_git.http.handlers.runs import attached
from floom_git.http.keys import ACTOR
from floom_git.http.origin import SAFE_METHODS, same_origin

View = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Page:
    """One dashboard URL. `perm`: None (anyone, e.g. sign-in), "user" (signed in), or the role
    needed in the selected workspace as an API route permission (read, write, admin, owner)."""

    method: str
    path: str
    view: View
    perm: str | None = "read"


def error_page(request: web.Request, exc: FloomError) -> web.Response:
    status = status_for(exc)
    return render(request, "error.html", http_status=status, status_code=status, detail=exc.message)


def wrap(page: Page) -> View:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            if request.method not in SAFE_METHODS:
                same_origin(request)  # the API's CSRF rule, for form posts
            prepare_twin(request)
            actor = viewer(request)
            if actor is not None:
                request[ACTOR] = actor
            elif page.perm is not None:
                raise to_sign_in(request)
            if page.perm not in (None, "user"):
                assert actor is not None
                enter(request, actor, page.perm)
                await attached(request)  # the run store, loaded on first use
            return await page.view(request)
        except FloomError as exc:
            return error_page(request, exc)

    handler.__name__ = f"page_{page.view.__name__}"
    handler.__doc__ = page.view.__doc__
    return handler

"""Who is looking at a dashboard page and what they may do there: the API's own Authenticator,
workspace selection and role check, the same-origin rule for form posts, and `call`, which runs
a REST handler in this process with a form's values as its JSON body, so a page and the API
apply one set of rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from floom_git.errors import Unauthenticated
from floom_git.http.keys import (
    ACTOR,
    ANSWER,
    AUTH,
    GIVEN_BODY,
    MANAGER,
    SPECS,
    TWIN,
    WORKSPACE,
)
from floom_git.http.middleware import ROLE_FOR
from floom_git.http.origin import SAFE_METHODS
from floom_git.http.route import Handler
from floom_git.http.selection import selected_workspace
from floom_git.services.actor import ROLES, Actor

SIGN_IN = "/ui/login"


def viewer(request: web.Request) -> Actor | None:
    """The signed-in caller (session cookie, or a token header from a script), else None."""
    try:
        return request.app[AUTH].authenticate(request.headers, request.cookies)
    except Unauthenticated:
        return None


def enter(request: web.Request, actor: Actor, perm: str) -> None:
    """Act in the selected workspace with at least `perm` (a route permission), exactly as the
    API middleware does; Forbidden when the caller is not a member or ranks lower."""
    ws_id = selected_workspace(request, actor)
    request[ACTOR] = request.app[AUTH].authorize(actor, ws_id, ROLE_FOR[perm])
    request[WORKSPACE] = request.app[MANAGER].get(ws_id)


def can(request: web.Request, perm: str) -> bool:
    """Whether the caller's role in the current workspace covers `perm` (to show a form or not)."""
    actor = request.get(ACTOR)
    role = getattr(actor, "role", None)
    return role in ROLES and ROLES.index(role) >= ROLES.index(ROLE_FOR[perm])


def local_path(target: str | None, default: str = "/ui/") -> str:
    """`target` when it is a path on this server, else `default`: no open redirects."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def to_sign_in(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{SIGN_IN}?next={quote(request.path_qs, safe='/')}")


def prepare_twin(request: web.Request) -> None:
    """Before a form post's body is read: the JSON request the form stands for (same URL,
    cookies, Origin and other headers, `Content-Type: application/json`), for `call`."""
    if request.method not in SAFE_METHODS:
        headers = {**request.headers, "Content-Type": "application/json"}
        request[TWIN] = request.clone(headers=headers)


async def call(request: web.Request, handler: Handler, body: Any = None, type_: Any = None,
               params: dict[str, str] | None = None, raw: bool = False) -> Any:
    """Run the REST `handler` in this process and return its decoded JSON answer (as `type_`
    when given; the response itself when it is not JSON). A form post runs it on the JSON
    request the form stands for (`prepare_twin`) with `body` (a msgspec Struct or dict) as the
    body, or on the post itself when `raw` (a multipart upload the handler reads). The role
    its route declares is checked first, as the API middleware does. `params` are path
    parameters the page's URL does not carry (pages use the API's names for those it does)."""
    route = request.app[SPECS][handler]
    inner = request if raw else request.get(TWIN, request)
    if params:
        request.match_info.update(params)
    actor = request.get(ACTOR)
    if actor is not None:
        inner[ACTOR] = actor
    if route.perm not in ("public", "user") and actor is not None:
        param = route.extra.get("workspace_param")
        ws_id = request.match_info[param] if param else selected_workspace(request, actor)
        inner[ACTOR] = request.app[AUTH].authorize(actor, ws_id, ROLE_FOR[route.perm])
        inner[WORKSPACE] = request.app[MANAGER].get(ws_id)
    elif route.perm != "public" and actor is None:
        raise Unauthenticated("Sign in first")
    if inner is not request or body is not None:
        inner[GIVEN_BODY] = msgspec.json.encode({} if body is None else body)
    response = await handler(inner)
    request[ANSWER] = response
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return response
    assert isinstance(response.body, bytes)
    return msgspec.json.decode(response.body,
                               type=type_) if type_ else msgspec.json.decode(response.body)


def answer_cookies(request: web.Request, target: web.StreamResponse) -> None:
    """Copy the cookies the last called handler set (a session, a workspace) onto `target`."""
    answer = request.get(ANSWER)
    if answer is not None:
        for name, morsel in answer.cookies.items():
            target.cookies[name] = morsel

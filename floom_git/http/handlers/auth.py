"""Sign-in routes: password login and the session cookie, logout, refresh, magic links, /auth/me
and the CLI device flow (start, approve/deny, exchange for a token). A session, magic link or
device token minted from a credential inherits its grant (grants.derive): never stronger."""

from __future__ import annotations

from aiohttp import web

from floom_git.errors import Forbidden
from floom_git.http import wire
from floom_git.http.keys import ACTOR, AUTH, IDENTITY, LIMITER, MANAGER, SETTINGS
from floom_git.http.origin import json_body, same_origin
from floom_git.http.ratelimit import auth_attempt, client_ip
from floom_git.http.selection import selected_workspace
from floom_git.schemas.identity import (
    DeviceDecision,
    DeviceExchange,
    DeviceOut,
    DeviceStart,
    DeviceToken,
    Done,
    LoginIn,
    MagicLinkOut,
    Me,
    SessionOut,
    UserOut,
    WorkspaceRef,
)
from floom_git.schemas.rows import UserRow
from floom_git.services.auth import SESSION_COOKIE, Principal
from floom_git.services.identity import Identity, signin
from floom_git.services.identity.grants import UNLIMITED, Grant, derive
from floom_git.services.tenancy import describe, iso

LOGIN_IP_PEOPLE = 4
POLL_SECONDS = 2
SMALL_BODY = 16 * 1024


def identity(request: web.Request) -> Identity:
    return request.app[IDENTITY]


def require_user(request: web.Request) -> Principal:
    """The caller as a stored user; Forbidden for the shared secret and workspace tokens."""
    actor = request[ACTOR]
    if not (isinstance(actor, Principal) and actor.is_user):
        raise Forbidden(f"This needs a signed-in user (a session or a personal token), "
                        f"not {actor.auth_method.replace('_', ' ')}")
    return actor


def user_out(row: UserRow) -> UserOut:
    return UserOut(id=row.id, username=row.username, email=row.email, display_name=row.display_name,
                   is_admin=row.is_admin, created_at=iso(row.created_at) or "")


def base_url(request: web.Request) -> str:
    configured = request.app[SETTINGS].public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


def _active(request: web.Request, actor: object) -> tuple[WorkspaceRef | None, str | None]:
    ws_id = selected_workspace(request, actor)  # type: ignore[arg-type]
    manager = request.app[MANAGER]
    role = request.app[AUTH].role_in(actor, ws_id)  # type: ignore[arg-type]
    if role is None or not manager.exists(ws_id):
        return None, None
    return WorkspaceRef(id=ws_id, name=describe(manager.get(ws_id))[0]), role


async def _with_session(request: web.Request, user: UserRow, grant: Grant = UNLIMITED
                        ) -> web.Response:
    """Start a session for `user` limited by `grant`; answer with it and set its cookie."""
    ident = identity(request)
    value, expires_at = await signin.start_session(ident, user.id, grant)
    principal = request.app[AUTH].session_actor(value)
    workspace, role = _active(request, principal)
    body = SessionOut(user=user_out(user), expires_at=iso(expires_at) or "", workspace=workspace,
                      role=role)
    response = wire.json(body)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max(1, int(expires_at - ident.sessions.now())),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )
    return response


async def login(request: web.Request) -> web.Response:
    # the answer sets the session cookie: a browser may only sign in from this server's pages
    json_body(request)
    if "Origin" in request.headers or "Sec-Fetch-Site" in request.headers:
        same_origin(request)
    body = await wire.decode(request, LoginIn, SMALL_BODY)
    ident = identity(request)
    limiter = request.app[LIMITER]
    # one budget per person, whichever name or email they type, and per client IP a budget
    # of LOGIN_IP_PEOPLE people (an office signs in from one address)
    limiter.hit("login", "ip:" + client_ip(request), limiter.per_minute["login"] * LOGIN_IP_PEOPLE)
    limiter.hit("login", "user:" + await signin.canonical_login(ident, body.username))
    with auth_attempt(request):
        user = await signin.password_login(ident, body.username, body.password)
    return await _with_session(request, user)  # the password is the user's own, uncapped authority


async def logout(request: web.Request) -> web.Response:
    value = request.cookies.get(SESSION_COOKIE)
    if value:
        same_origin(request)
    ended = bool(value) and await signin.end_session(identity(request), value or "")
    response = wire.json(Done(ok=bool(ended)))
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def refresh(request: web.Request) -> web.Response:
    """A fresh session for the signed-in user, as limited as the credential that asks for it;
    the old session (if that was the credential) ends."""
    actor = require_user(request)
    ident = identity(request)
    if actor.auth_method == "session":
        await signin.end_session(ident, request.cookies.get(SESSION_COOKIE, ""))
    return await _with_session(request, ident.users.get(actor.user_id), derive(actor.grant()))


async def magic_link(request: web.Request) -> web.Response:
    actor = require_user(request)
    ident = identity(request)
    token = await signin.issue_magic_link(ident, actor.user_id, derive(actor.grant()))
    return wire.json(MagicLinkOut(url=f"{base_url(request)}/auth/magic/{token}",
                                  expires_in=ident.magic.ttl))


async def magic_consume(request: web.Request) -> web.Response:
    with auth_attempt(request):
        user, grant = await signin.magic_sign_in(identity(request), request.match_info["token"])
    return await _with_session(request, user, derive(grant))


async def me(request: web.Request) -> web.Response:
    actor = request[ACTOR]
    user = None
    if isinstance(actor, Principal) and actor.is_user:
        user = user_out(identity(request).users.get(actor.user_id))
    workspace, role = _active(request, actor)
    return wire.json(Me(user=user, identity=actor.user_id, auth_method=actor.auth_method,
                        workspace=workspace, role=role,
                        token_id=getattr(actor, "token_id", None)))


# -- CLI device flow ---------------------------------------------------------------------------
async def device_start(request: web.Request) -> web.Response:
    body = await wire.decode(request, DeviceStart,
                             SMALL_BODY) if request.body_exists else DeviceStart()
    ident = identity(request)
    device_code, user_code = await signin.start_device(ident, body.client_name)
    return wire.json(DeviceOut(device_code=device_code, user_code=user_code,
                               verification_url=f"{base_url(request)}/ui/device",
                               expires_in_seconds=ident.devices.ttl,
                               polling_interval_seconds=POLL_SECONDS), 201)


async def _decide(request: web.Request, approve: bool) -> web.Response:
    actor = require_user(request)
    body = await wire.decode(request, DeviceDecision, SMALL_BODY)
    await signin.decide_device(identity(request), body.user_code, actor.user_id, approve,
                               derive(actor.grant()))
    return wire.json(Done(ok=True))


async def device_approve(request: web.Request) -> web.Response:
    return await _decide(request, True)


async def device_deny(request: web.Request) -> web.Response:
    return await _decide(request, False)


async def cli_exchange(request: web.Request) -> web.Response:
    """Trade an approved device code for a personal token of the approving user, exactly once
    (signin.exchange_device)."""
    body = await wire.decode(request, DeviceExchange, SMALL_BODY)
    value, row, user = await signin.exchange_device(identity(request), body.device_code)
    return wire.json(DeviceToken(token=value, token_id=row.id, user=user_out(user),
                                 api_base=f"{base_url(request)}/api"))

"""Turning a template into a page: the Jinja environment (autoescape on everywhere), the filters
templates use, the context every page shares (who, which workspace, the switcher, a notice),
the one-shot notice cookie and the security headers of every dashboard answer."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
import msgspec
from aiohttp import web

from floom_git import __version__
from floom_git.dashboard.access import can
from floom_git.http.keys import ACTOR, AUTH, IDENTITY, MANAGER, WORKSPACE
from floom_git.services import tenancy
from floom_git.services.auth import Principal

NOTICE_COOKIE = "floom_notice"
# Pages load only their own scripts and styles; nothing inline, no frames, forms post home.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff"}
STATUS_TONE = {"completed": "ok", "ready": "ok", "approved": "ok", "open": "ok",
               "failed": "bad", "error": "bad", "rejected": "bad", "expired": "bad",
               "running": "live", "queued": "wait", "pending_approval": "wait", "pending": "wait",
               "paused": "muted", "archived": "muted", "cancelled": "muted", "closed": "muted"}


def _when(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def ago(value: Any) -> str:
    """'3 min ago' for an ISO timestamp (the exact time goes in a title attribute)."""
    when = _when(value)
    if when is None:
        return "—"
    seconds = int((dt.datetime.now(dt.UTC) - when).total_seconds())
    ahead = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"in {seconds // size} {unit}" if ahead else f"{seconds // size} {unit} ago"
    return "in a moment" if ahead else "just now"


def duration(ms: Any) -> str:
    if not isinstance(ms, int | float):  # absent fields arrive as Jinja's Undefined
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def percent(rate: Any) -> str:
    return f"{rate * 100:.0f}%" if isinstance(rate, int | float) else "—"


def pretty(value: Any) -> str:
    """JSON for people: indented, keys in their order (escaped by the template like any text)."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def tone(status: str | None) -> str:
    return STATUS_TONE.get(status or "", "muted")


def environment(app: web.Application) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("floom_git.dashboard") / "templates"))
    env = aiohttp_jinja2.setup(app, loader=loader, autoescape=True,
                               trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ago=ago, duration=duration, percent=percent, pretty=pretty, tone=tone)
    env.globals["version"] = __version__
    return env


# -- the one-shot notice ------------------------------------------------------------------------
def notify(response: web.StreamResponse, message: str, kind: str = "ok") -> web.StreamResponse:
    """Show `message` once on the next page (after a redirect)."""
    raw = json.dumps({"m": message[:600], "k": kind}).encode()
    response.set_cookie(NOTICE_COOKIE, base64.urlsafe_b64encode(raw).decode(), path="/",
                        max_age=120, httponly=True, samesite="Lax")
    return response


def _notice(request: web.Request) -> dict[str, str] | None:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return {"message": str(data["m"]), "kind": "bad" if data.get("k") == "bad" else "ok"}
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def redirect(location: str, message: str | None = None, kind: str = "ok") -> web.HTTPSeeOther:
    response = web.HTTPSeeOther(location)
    if message:
        notify(response, message, kind)
    return response


# -- pages ----------------------------------------------------------------------------------------
def _shell(request: web.Request) -> dict[str, Any]:
    """Who is signed in, the active workspace and the ones to switch to."""
    actor = request.get(ACTOR)
    ws = request.get(WORKSPACE)
    user = None
    if isinstance(actor, Principal) and actor.is_user:
        user = request.app[IDENTITY].users.get(actor.user_id)
    switch: list[dict[str, Any]] = []
    if actor is not None:
        manager = request.app[MANAGER]
        visible = request.app[AUTH].visible_workspaces(actor, manager.ids())
        switch = [{"id": w, "name": tenancy.describe(manager.get(w))[0], "role": role}
                  for w, role in sorted(visible.items())]
    return {"actor": actor, "user": user, "ws": ws, "workspaces": switch,
            "role": getattr(actor, "role", None) if ws is not None else None,
            "can_write": ws is not None and can(request, "write"),
            "can_admin": ws is not None and can(request, "admin")}


def _person(request: web.Request, user_id: str | None) -> str:
    """A user id as the user's name (ids are what run records and issue files keep)."""
    if not user_id:
        return "someone"
    user = request.app[IDENTITY].store.user(user_id) if user_id.startswith("usr_") else None
    return (user.display_name or user.username) if user is not None else user_id


def render(request: web.Request, template: str, http_status: int = 200,
           **context: Any) -> web.Response:
    context = {**_shell(request), "notice": _notice(request), "page_path": request.path,
               "person": lambda user_id: _person(request, user_id), **context}
    response = aiohttp_jinja2.render_template(template, request, context, status=http_status)
    response.headers.update(HEADERS)
    if NOTICE_COOKIE in request.cookies:
        response.del_cookie(NOTICE_COOKIE, path="/")
    return response

"""Workspace settings: members and invites, workspace tokens (a new token's value is shown on
the page that made it, once) and secrets by name (values are write-only)."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import call, can
from floom_git.dashboard.render import redirect, render
from floom_git.http.handlers import members, secrets, tokens
from floom_git.http.handlers.common import workspace
from floom_git.schemas.identity import MemberInvite, Role, SecretIn, TokenCreate


async def _page(request: web.Request, status: int = 200, **extra: object) -> web.Response:
    ws_id = workspace(request).id
    team = await call(request, members.list_members, params={"id": ws_id})
    ws_tokens = await call(request, tokens.list_workspace) if can(request, "admin") else []
    names = await call(request, secrets.list_secrets)
    return render(request, "settings.html", http_status=status, team=team, tokens=ws_tokens,
                  secrets=names, **{"new_token": None, **extra})


async def settings(request: web.Request) -> web.Response:
    return await _page(request)


async def invite(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    body = MemberInvite(email=forms.text(form, "email", 320).strip(),
                        role=cast(Role, form.get("role") or "member"))  # the API checks it
    await call(request, members.invite, body, params={"id": workspace(request).id})
    raise redirect("/ui/settings", f"Invited {body.email} as {body.role}.")


async def remove_member(request: web.Request) -> web.StreamResponse:
    await call(request, members.remove, params={"id": workspace(request).id})
    raise redirect("/ui/settings", "Removed.")


async def new_token(request: web.Request) -> web.Response:
    form = await forms.fields(request)
    days = forms.text(form, "expires_days", 6).strip()
    body = TokenCreate(name=forms.text(form, "name", 200).strip(),
                       role=form.get("role") or None,  # type: ignore[arg-type]
                       expires_days=int(days) if days.isdigit() else None)
    made = await call(request, tokens.create_workspace, body)
    return await _page(request, new_token=made)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    await call(request, tokens.revoke_workspace)
    raise redirect("/ui/settings", f"Revoked token {request.match_info['id']}.")


async def set_secret(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    name = forms.text(form, "name", 100).strip()
    await call(request, secrets.set_secret, SecretIn(value=forms.text(form, "value", 65_536)),
               params={"name": name})
    raise redirect("/ui/settings", f"Secret {name} saved.")


async def delete_secret(request: web.Request) -> web.StreamResponse:
    await call(request, secrets.delete_secret)
    raise redirect("/ui/settings", f"Secret {request.match_info['name']} deleted.")

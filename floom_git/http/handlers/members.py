"""Member routes of a workspace: list, invite by email (pending until that person signs in),
change a role and remove. Admins manage members; only owners touch owners."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.auth import SMALL_BODY, identity
from floom_git.http.handlers.common import actor, workspace
from floom_git.schemas.api import Deleted
from floom_git.schemas.identity import MemberInvite, MemberList, MemberOut, MemberRoleIn
from floom_git.schemas.rows import MemberRow, UserRow
from floom_git.services.identity import manage
from floom_git.services.tenancy import iso


def member_out(ws_id: str, row: MemberRow, user: UserRow | None) -> MemberOut:
    return MemberOut(workspace_id=ws_id, user_id=row.user_id,
                     username=user.username if user else None,
                     email=(user.email if user else None) or row.email,
                     display_name=user.display_name if user else None, role=row.role,
                     status=row.status, invited_by=row.invited_by,
                     created_at=iso(row.created_at) or "", updated_at=iso(row.updated_at) or "")


def _one(request: web.Request, member: manage.Member) -> MemberOut:
    return member_out(workspace(request).id, *member)


async def list_members(request: web.Request) -> web.Response:
    ws = workspace(request)
    rows = identity(request).members.list(ws.uid)
    who = actor(request)
    return wire.json(
        MemberList(
            workspace_id=ws.id,
            members=[member_out(ws.id, m, u) for m, u in rows],
            my_user_id=who.user_id,
            my_role=who.role,
        )
    )


async def invite(request: web.Request) -> web.Response:
    body = await wire.decode(request, MemberInvite, SMALL_BODY)
    who = actor(request)
    member = await manage.invite_member(identity(request), workspace(request).uid, body.email,
                                        body.role, who.user_id, who.role)
    return wire.json(_one(request, member), 201)


async def set_role(request: web.Request) -> web.Response:
    body = await wire.decode(request, MemberRoleIn, SMALL_BODY)
    member = await manage.set_member_role(identity(request), workspace(request).uid,
                                          request.match_info["user_id"], body.role,
                                          actor(request).role)
    return wire.json(_one(request, member))


async def remove(request: web.Request) -> web.Response:
    key = request.match_info["user_id"]
    await manage.remove_member(identity(request), workspace(request).uid, key, actor(request).role)
    return wire.json(Deleted(deleted=True, id=key, sha=None))

"""Workspace issue routes: list, detail, create, update, comment (files under .floom/issues/)."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.schemas.issue import CommentCreate, IssueCreate, IssueUpdate
from floom_git.services import issues


async def list_issues(request: web.Request) -> web.Response:
    q = request.query
    result = await issues.list_issues(
        workspace(request),
        status=q.get("status") or None, label=q.get("label") or None,
        asset_type=q.get("asset_type") or None, asset_id=q.get("asset_id") or None,
        limit=wire.q_limit(request, 500, 5000), offset=wire.q_int(request, "offset", 0, 0),
    )
    return wire.json(result, headers={"X-Total-Count": str(result.total)})


async def get_issue(request: web.Request) -> web.Response:
    return wire.json(await issues.get_issue(workspace(request), request.match_info["id"]))


async def create_issue(request: web.Request) -> web.Response:
    body = await wire.decode(request, IssueCreate, settings(request).max_json_bytes)
    issue, _ = await issues.create(workspace(request), actor(request), body)
    return wire.json(issue, 201)


async def update_issue(request: web.Request) -> web.Response:
    issue_id = issues.check_id(request.match_info["id"])
    body = await wire.decode(request, IssueUpdate, settings(request).max_json_bytes)
    return wire.json(await issues.update(workspace(request), actor(request), issue_id, body))


async def add_comment(request: web.Request) -> web.Response:
    issue_id = issues.check_id(request.match_info["id"])
    body = await wire.decode(request, CommentCreate, settings(request).max_json_bytes)
    return wire.json(await issues.comment(workspace(request), actor(request), issue_id, body), 201)

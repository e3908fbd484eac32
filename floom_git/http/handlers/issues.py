"""Workspace issue routes: list, detail, create, update, comment (files under .floom/issues/)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.schemas.issue import ASSET_TYPES, STATUSES, CommentCreate, IssueCreate, IssueUpdate
from floom_git.services import issues


async def list_issues(request: web.Request) -> web.Response:
    q = request.query
    result = await asyncio.to_thread(
        issues.list_issues, workspace(request),
        status=q.get("status") or None, label=q.get("label") or None,
        asset_type=q.get("asset_type") or None, asset_id=q.get("asset_id") or None,
        limit=wire.q_limit(request, 500, 5000), offset=wire.q_int(request, "offset", 0, 0),
    )
    return wire.json(result, headers={"X-Total-Count": str(result.total)})


async def get_issue(request: web.Request) -> web.Response:
    return wire.json(await asyncio.to_thread(issues.get_issue, workspace(request), request.match_info["id"]))


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


def routes() -> list:
    from floom_git.http.routes import OFFSET, Route, limit
    from floom_git.schemas.issue import Comment, IssueDetail, IssueList, IssueOut

    tag = "issues"
    # asset_type and asset_id go together (or clear_asset alone); labels are single lines
    BINDING = "asset_type and asset_id go together; labels and titles are single lines"
    filters = (("status", "string", "open or closed", {"enum": list(STATUSES)}),
               ("label", "string", "has this label"),
               ("asset_type", "string", "bound to this kind of asset", {"enum": list(ASSET_TYPES)}),
               ("asset_id", "string", "bound to this asset"),
               limit("page size (default 500, at most 5000)"), OFFSET)
    return [
        Route("GET", "/workspace/issues", list_issues, "read",
              "List issues (files under .floom/issues/); unparseable files are listed in errors",
              tag, response=IssueList, query=filters, extra={"total_count": True}),
        Route("POST", "/workspace/issues", create_issue, "write",
              "Create an issue (optionally bound to a worker, context or run)", tag,
              body=IssueCreate, response=IssueOut, status=201, extra={"validates": BINDING}),
        Route("GET", "/workspace/issues/{id}", get_issue, "read", "Issue detail with comments", tag,
              response=IssueDetail),
        Route("PATCH", "/workspace/issues/{id}", update_issue, "write",
              "Update title, body, status, labels or asset binding (clear_asset unbinds)", tag,
              body=IssueUpdate, response=IssueOut, extra={"validates": BINDING}),
        Route("POST", "/workspace/issues/{id}/comments", add_comment, "write", "Append a comment",
              tag, body=CommentCreate, response=Comment, status=201),
    ]

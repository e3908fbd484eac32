"""Run feedback routes: list and leave feedback on a run, and turn feedback into an issue."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings
from floom_git.http.handlers.runs import attached
from floom_git.schemas.issue import FeedbackCreate, FeedbackIssueCreate
from floom_git.services import run_feedback


async def list_feedback(request: web.Request) -> web.Response:
    ws = await attached(request)
    items = await run_feedback.list_feedback(ws, request.match_info["id"])
    return wire.json(items)


async def add_feedback(request: web.Request) -> web.Response:
    ws = await attached(request)
    body = await wire.decode(request, FeedbackCreate, settings(request).max_json_bytes)
    item = await run_feedback.add(ws, actor(request), request.match_info["id"], body)
    return wire.json(item, 201)


async def feedback_issue(request: web.Request) -> web.Response:
    ws = await attached(request)
    run_id = request.match_info["id"]
    limit = settings(request).max_json_bytes
    body = await wire.decode_optional(request, FeedbackIssueCreate, limit)
    result = await run_feedback.to_issue(ws, actor(request), run_id, body)
    return wire.json(result, 201 if result.created else 200)

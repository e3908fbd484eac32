"""Workspace issues: the list (open, closed, all), one issue with its comments, and the writes:
create, comment, close and reopen."""

from __future__ import annotations

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import call
from floom_git.dashboard.render import redirect, render
from floom_git.errors import FloomError, InvalidInput
from floom_git.http.handlers import issues as api
from floom_git.schemas.issue import CommentCreate, IssueCreate, IssueUpdate


async def list_issues(request: web.Request) -> web.Response:
    data = await call(request, api.list_issues)
    return render(request, "issues.html", data=data, status=request.query.get("status", ""))


async def new_form(request: web.Request) -> web.Response:
    return render(request, "issue_new.html", title="", body="", labels="", error=None)


async def create(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    title, body = forms.text(form, "title", 1000), forms.text(form, "body", 200_000)
    labels = forms.text(form, "labels", 1000)
    try:
        made = await call(request, api.create_issue, IssueCreate(
            title=title, body=body, labels=[x.strip() for x in labels.split(",") if x.strip()]))
    except FloomError as exc:
        return render(request, "issue_new.html", http_status=400, title=title, body=body,
                      labels=labels, error=exc.message)
    raise redirect(f"/ui/issues/{made['id']}", f"Created {made['id']}.")


async def issue(request: web.Request) -> web.Response:
    data = await call(request, api.get_issue)
    return render(request, "issue.html", i=data)


async def comment(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    await call(request, api.add_comment, CommentCreate(body=forms.text(form, "body", 200_000)))
    raise redirect(f"/ui/issues/{request.match_info['id']}", "Comment added.")


async def set_status(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    status = form.get("status")
    if status not in ("open", "closed"):
        raise InvalidInput("status: open or closed")
    done = await call(request, api.update_issue, IssueUpdate(status=status))
    raise redirect(f"/ui/issues/{done['id']}", f"{done['id']} is {done['status']}.")

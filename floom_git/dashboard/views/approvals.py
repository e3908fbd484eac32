"""The approvals inbox: pending decisions with the run's proposed output, approve (optionally
with an edited output and a note) or reject with a reason; decided ones by status."""

from __future__ import annotations

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import call
from floom_git.dashboard.render import redirect, render
from floom_git.http.handlers import runs as api
from floom_git.schemas.run import ApproveBody, RejectBody

STATUSES = ("pending", "approved", "rejected", "expired", "cancelled", "all")


async def inbox(request: web.Request) -> web.Response:
    items = await call(request, api.list_approvals)
    status = request.query.get("status") or "pending"
    proposed = {}
    if status == "pending":
        for item in items:
            run = await call(request, api.get_run, params={"id": item["run_id"]})
            proposed[item["run_id"]] = run.get("outputs") or {}
    return render(request, "approvals.html", items=items, status=status, statuses=STATUSES,
                  proposed=proposed)


async def approve(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    note = forms.text(form, "annotation", 10_000).strip() or None
    edited = forms.json_field(form, "edited_output")
    if edited == forms.json_field(form, "proposed"):
        edited = None  # approved as proposed: record no edit
    body = ApproveBody(edited_output=edited, annotation=note)
    done = await call(request, api.approve_run, body)
    raise redirect(f"/ui/runs/{done['follow_up_run_id']}",
                   f"Approved; follow-up run {done['follow_up_run_id']} started.")


async def reject(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    reason = forms.text(form, "reason", 10_000).strip() or None
    await call(request, api.reject_run, RejectBody(reason=reason))
    raise redirect("/ui/approvals", f"Rejected run {request.match_info['id']}.")

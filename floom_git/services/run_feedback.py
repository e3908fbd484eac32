"""Run feedback: lightweight notes (text and rating) kept with the run record on floom/runs as an
append-only feedback.ndjson, and the opt-in bridge that turns feedback into a workspace issue
bound to the run (deduplicated by feedback_id, persisted as an issue front-matter key)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from floom_git.errors import InvalidInput, Unprocessable
from floom_git.schemas.issue import (
    Feedback,
    FeedbackCreate,
    FeedbackIssue,
    FeedbackIssueCreate,
    IssueCreate,
)
from floom_git.services import issues, runs
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace

MAX_CONTENT = 10_000
FIELDS = set(Feedback.__struct_fields__)


def _merge(lines: list[dict[str, Any]]) -> list[Feedback]:
    """Feedback rows in order; a later line with the same id (e.g. its issue link) updates it."""
    rows: dict[str, dict[str, Any]] = {}
    for item in lines:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        if item["id"] in rows:
            rows[item["id"]].update(item)
        elif isinstance(item.get("content"), str) and isinstance(item.get("run_id"), str):
            rows[item["id"]] = dict(item)
    return [Feedback(**{k: v for k, v in row.items() if k in FIELDS}) for row in rows.values()]


async def list_feedback(ws: Workspace, run_id: str) -> list[Feedback]:
    """The run's feedback; NotFound("Run not found")."""
    runs.get_run(ws, run_id)
    return _merge(await asyncio.to_thread(runs.list_feedback, ws, run_id))  # may read git


async def add(ws: Workspace, actor: Actor, run_id: str, body: FeedbackCreate) -> Feedback:
    """Record feedback on a run; it never becomes an issue by itself. Runs on the event loop:
    the run store schedules its commit there."""
    content = body.content.strip()
    if not content:
        raise InvalidInput("content: feedback must not be empty")
    if len(content) > MAX_CONTENT:
        raise InvalidInput(f"content: at most {MAX_CONTENT} characters")
    record = runs.get_run(ws, run_id)
    item: dict[str, Any] = {
        "id": f"fdbk_{secrets.token_hex(8)}", "run_id": run_id, "worker_id": record.worker_id,
        "content": content, "rating": body.rating, "author_id": actor.user_id,
        "author_name": actor.name, "created_at": issues.now_iso()}
    runs.add_feedback(ws, run_id, item)
    return Feedback(**item)


def _issue_body(
    text: str, rating: Any, run_id: str, worker_id: str, feedback_id: str | None
) -> str:
    lines = [text, ""]
    if rating is not None:
        lines.append(f"- Rating: {rating}")
    lines += [f"- Run: {run_id}", f"- Worker: {worker_id}"]
    if feedback_id:
        lines.append(f"- Feedback: {feedback_id}")
    return "\n".join(lines)


async def to_issue(ws: Workspace, actor: Actor, run_id: str,
                   body: FeedbackIssueCreate) -> FeedbackIssue:
    """Turn feedback into an issue bound to the run; the same feedback_id again returns the
    issue made the first time (created=False).

    Raises NotFound for an unknown run, Unprocessable when there is no text to file.
    """
    stored = await list_feedback(ws, run_id)
    record = runs.get_run(ws, run_id)
    fid = body.feedback_id
    row = next((f for f in stored if f.id == fid), None) if fid else None
    text = (row.content if row else body.feedback_text or "").strip()
    if not text:
        raise Unprocessable("feedback_text: required unless feedback_id names stored feedback "
                            "of this run")
    rating = row.rating if row is not None and row.rating is not None else body.rating
    first = text.splitlines()[0].strip()
    title = (body.title or "").strip() or f"Run feedback on {record.worker_id}: {first[:80]}"
    request = IssueCreate(
        title=title,
        body=_issue_body(text, rating, run_id, record.worker_id, fid),
        asset_type="run",
        asset_id=run_id,
        source="run_feedback",
        labels=["run-feedback"],
    )
    dedup = issues.Dedup({"feedback_id": fid, "asset_id": run_id}) if fid else None
    issue, created = await issues.create(ws, actor, request,
                                         extra={"feedback_id": fid} if fid else None, dedup=dedup)
    if row is not None and row.issue_id != issue.id:
        runs.add_feedback(ws, run_id, {"id": row.id, "issue_id": issue.id,
                                       "linked_at": issues.now_iso()})
        row.issue_id = issue.id
    return FeedbackIssue(created=created, issue_id=issue.id, issue=issue, feedback=row)

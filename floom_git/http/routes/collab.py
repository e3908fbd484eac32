"""Route-table entries: issues, feedback on runs, share links, and workspace export/import."""

from __future__ import annotations

from floom_git.http.handlers import export, feedback, issues, sharing
from floom_git.http.route import OFFSET, Route, limit
from floom_git.schemas.issue import (
    ASSET_TYPES,
    STATUSES,
    Comment,
    CommentCreate,
    Feedback,
    FeedbackCreate,
    FeedbackIssue,
    FeedbackIssueCreate,
    IssueCreate,
    IssueDetail,
    IssueList,
    IssueOut,
    IssueUpdate,
)
from floom_git.schemas.sharing import (
    ImportFromShare,
    ImportResult,
    PublicWorker,
    ShareImported,
    ShareLink,
    ShareLinkCreate,
    ShareRevoked,
)


def issues_routes() -> list[Route]:
    tag = "issues"
    # asset_type and asset_id go together (or clear_asset alone); labels are single lines
    BINDING = "asset_type and asset_id go together; labels and titles are single lines"
    filters = (("status", "string", "open or closed", {"enum": list(STATUSES)}),
               ("label", "string", "has this label"),
               ("asset_type", "string", "bound to this kind of asset", {"enum": list(ASSET_TYPES)}),
               ("asset_id", "string", "bound to this asset"),
               limit("page size (default 500, at most 5000)"), OFFSET)
    return [
        Route("GET", "/workspace/issues", issues.list_issues, "read",
              "List issues (files under .floom/issues/); unparseable files are listed in errors",
              tag, response=IssueList, query=filters, extra={"total_count": True}),
        Route("POST", "/workspace/issues", issues.create_issue, "write",
              "Create an issue (optionally bound to a worker, context or run)", tag,
              body=IssueCreate, response=IssueOut, status=201, extra={"validates": BINDING}),
        Route("GET", "/workspace/issues/{id}", issues.get_issue, "read",
              "Issue detail with comments", tag,
              response=IssueDetail),
        Route("PATCH", "/workspace/issues/{id}", issues.update_issue, "write",
              "Update title, body, status, labels or asset binding (clear_asset unbinds)", tag,
              body=IssueUpdate, response=IssueOut, extra={"validates": BINDING}),
        Route("POST", "/workspace/issues/{id}/comments", issues.add_comment, "write",
              "Append a comment",
              tag, body=CommentCreate, response=Comment, status=201),
    ]


def sharing_routes() -> list[Route]:
    tag = "sharing"
    return [
        Route("POST", "/workers/import-from-share", sharing.import_from_share, "write",
              "Copy a shared worker into this workspace (a taken id gets -2, -3...)", tag,
              body=ImportFromShare, response=ShareImported, status=201),
        Route("POST", "/workers/{id}/share-link", sharing.create_link, "write",
              "Create a public read-only share link (the token is shown once)", tag,
              body=ShareLinkCreate, response=ShareLink, status=201, extra={"body_optional": True}),
        Route("DELETE", "/workers/{id}/share-link", sharing.revoke_links, "write",
              "Revoke every share link of this worker", tag, response=ShareRevoked),
        Route("GET", "/workers/public/{id}", sharing.public_worker, "public",
              "Public view of a shared worker (manifest and files, no secrets)", tag,
              response=PublicWorker, query=(("token", "string", "the share token (fls_...)"),)),
        Route("GET", "/s/{token}", sharing.public_by_token, "public", "Resolve a share link", tag,
              response=PublicWorker),
    ]


def export_routes() -> list[Route]:
    tag = "workspace"
    return [
        Route("GET", "/workspace/export", export.export_bundle, "admin",
              "Export workers, contexts, workspace.md and issues as a ZIP bundle (no secrets)", tag,
              content_type="application/zip"),
        Route("POST", "/workspace/import", export.import_bundle, "write",
              "Import a bundle (multipart field `bundle`) in one commit; never overwrites", tag,
              response=ImportResult,
              extra={"multipart": {"bundle": "binary"}, "raw_body": ("application/zip",),
                     "validates": "the bundle must be a ZIP of a workspace (no hostile entries)"}),
    ]


def feedback_routes() -> list[Route]:
    tag = "runs"
    return [
        Route("GET", "/runs/{id}/feedback", feedback.list_feedback, "read",
              "Feedback left on a run", tag,
              response=list[Feedback]),
        Route("POST", "/runs/{id}/feedback", feedback.add_feedback, "write",
              "Leave lightweight feedback (text and rating); never becomes an issue by itself", tag,
              body=FeedbackCreate, response=Feedback, status=201),
        Route("POST", "/runs/{id}/feedback/issue", feedback.feedback_issue, "write",
              "Turn feedback into an issue bound to the run (201; the same feedback_id again: "
              "200 with created=false)", tag, body=FeedbackIssueCreate, response=FeedbackIssue,
              status=201, extra={"body_optional": True, "also_status": (200,),
                                 "validates": "feedback_text, or a feedback_id of stored "
                                              "feedback, is needed (422 otherwise)"}),
    ]

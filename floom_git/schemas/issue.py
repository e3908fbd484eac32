"""The workspace issue file format (`.floom/issues/ISSUE-NNNN.md`), byte-compatible with
REFERENCE.md §4.2 (front matter in a fixed key order, unknown keys kept after the known ones,
None values omitted; then the body), the comment log format (§4.4), and the issues API bodies."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import msgspec
import yaml

from floom_git.codec import load_yaml
from floom_git.errors import InvalidInput
from floom_git.paths import ISSUES_DIR
from floom_git.schemas.base import NOT_BLANK, Body, documented, one_line

ID_RE = re.compile(r"^ISSUE-[0-9]{4,}\Z")
FILE_RE = re.compile(r"^ISSUE-([0-9]+)\.md\Z")
COMMENTS_RE = re.compile(r"^ISSUE-([0-9]+)\.comments\.ndjson\Z")
FRONT_RE = re.compile(r"^---\s*\n(.*?)\n---\s*\n?(.*)$", re.DOTALL)
KEY_ORDER = ("id", "status", "title", "asset_type", "asset_id", "source", "labels", "created_by",
             "created_at", "updated_at")
STATUSES = ("open", "closed")
ASSET_TYPES = ("worker", "context", "run", "connection", "approval", "mcp")


def md_path(issue_id: str) -> str:
    return f"{ISSUES_DIR}/{issue_id}.md"


def comments_path(issue_id: str) -> str:
    return f"{ISSUES_DIR}/{issue_id}.comments.ndjson"


def format_id(number: int) -> str:
    return f"ISSUE-{number:04d}"


def split(text: str, *, where: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of an issue file; no front matter -> ({}, whole text)."""
    match = FRONT_RE.match(text)
    if not match:
        return {}, text
    meta = load_yaml(match.group(1), where=where)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise InvalidInput(f"{where}: front matter must be a YAML mapping")
    return meta, match.group(2)


def render(meta: dict[str, Any], body: str) -> bytes:
    """The exact bytes of an issue file: known keys in order, then unknown ones, then the body."""
    ordered = {k: meta[k] for k in KEY_ORDER if meta.get(k) is not None}
    ordered.update({k: v for k, v in meta.items() if k not in KEY_ORDER and v is not None})
    front = yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{front.rstrip(chr(10))}\n---\n\n{body.strip()}\n".encode()


def parse_issue_file(data: bytes, *, where: str) -> tuple[dict[str, Any], str]:
    """Validate an issue file as pushed or written; InvalidInput naming `where` and the field."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: not valid UTF-8") from None
    meta, body = split(text, where=where)
    if not meta:
        raise InvalidInput(f"{where}: missing YAML front matter (--- ... ---)")
    name = where.rsplit("/", 1)[-1]
    file_match = FILE_RE.match(name)
    issue_id = meta.get("id")
    if not isinstance(issue_id, str) or not ID_RE.match(issue_id):
        raise InvalidInput(f"{where}: `id` must look like ISSUE-0001 - at `$.id`")
    if file_match and issue_id != name[:-3]:
        raise InvalidInput(f"{where}: id {issue_id} does not match the file name - at `$.id`")
    if meta.get("status", "open") not in STATUSES:
        raise InvalidInput(f"{where}: status must be open or closed - at `$.status`")
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput(f"{where}: `title` must be a non-empty string - at `$.title`")
    labels = meta.get("labels", [])
    if labels is not None and (
        not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)
    ):
        raise InvalidInput(f"{where}: `labels` must be a list of strings - at `$.labels`")
    asset_type, asset_id = meta.get("asset_type"), meta.get("asset_id")
    if (asset_type is None) != (asset_id is None):
        raise InvalidInput(f"{where}: asset_type and asset_id go together - at `$.asset_type`")
    if asset_type is not None and asset_type not in ASSET_TYPES:
        raise InvalidInput(f"{where}: unknown asset_type '{asset_type}' - at `$.asset_type`")
    return meta, body


def comment_line(comment: dict[str, Any]) -> bytes:
    """One line of a comments log, as the reference writes it (json.dumps, unicode kept)."""
    return (json.dumps(comment, ensure_ascii=False) + "\n").encode("utf-8")


def parse_comments(data: bytes) -> list[dict[str, Any]]:
    """The comments in a log; blank, non-JSON and malformed lines are skipped (§4.4)."""
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and isinstance(item.get("body"), str)
        ):
            out.append(item)
    return out


def check_comments_file(data: bytes, *, where: str) -> None:
    """Validate a comments log as pushed or imported: UTF-8, and every JSON line an object
    with string `id` and `body`; InvalidInput naming `where` and the line otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: not valid UTF-8") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InvalidInput(f"{where}: line {number} is not JSON") from None
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) \
                or not isinstance(item.get("body"), str):
            raise InvalidInput(f"{where}: line {number} must be an object with string id and body")


# -- API bodies ---------------------------------------------------------------------------
class IssueCreate(Body, kw_only=True):
    title: Annotated[str, documented(one_line(300, delete_ok=False))]
    body: str = ""
    asset_type: str | None = None
    asset_id: str | None = None
    source: str | None = None
    labels: list[str] = []


class IssueUpdate(Body, kw_only=True):
    title: str | None = None
    body: str | None = None
    status: str | None = None
    labels: list[str] | None = None
    asset_type: str | None = None
    asset_id: str | None = None
    clear_asset: bool = False


class CommentCreate(Body, kw_only=True):
    body: Annotated[str, documented(NOT_BLANK)]


class Comment(msgspec.Struct, kw_only=True):
    id: str
    body: str
    created_by: str | None = None
    created_at: str | None = None


class IssueOut(msgspec.Struct, kw_only=True):
    id: str
    status: str
    title: str
    body: str
    asset_type: str | None
    asset_id: str | None
    source: str | None
    labels: list[str]
    created_by: str | None
    created_at: str | None
    updated_at: str | None
    comment_count: int


class IssueDetail(IssueOut, kw_only=True):
    comments: list[Comment]


class IssueProblem(msgspec.Struct, kw_only=True):
    path: str
    error: str


class IssueList(msgspec.Struct, kw_only=True):
    issues: list[IssueOut]
    errors: list[IssueProblem] = []
    total: int = 0


# -- run feedback (REFERENCE §4.6) ----------------------------------------------------------
Rating = Literal["up", "down"] | Annotated[int, msgspec.Meta(ge=1, le=5)]


class FeedbackCreate(Body, kw_only=True):
    content: Annotated[str, documented(NOT_BLANK)]  # at most 10,000 characters, trimmed
    rating: Rating | None = None


class Feedback(msgspec.Struct, kw_only=True):
    id: str
    run_id: str
    worker_id: str | None = None
    content: str
    rating: str | int | None = None
    author_id: str | None = None
    author_name: str | None = None
    created_at: str | None = None
    issue_id: str | None = None


class FeedbackIssueCreate(Body, kw_only=True):
    feedback_text: str | None = None
    feedback_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    rating: Rating | None = None
    title: str | None = None


class FeedbackIssue(msgspec.Struct, kw_only=True):
    created: bool
    issue_id: str
    issue: IssueOut
    feedback: Feedback | None = None

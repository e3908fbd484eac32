"""Workspace issues: files under .floom/issues/ on main (no database). Reads come from the
working tree; every change is a read-modify-write of the branch tip inside the workspace
writer's build function, so ids never collide and concurrent edits never lose each other."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floom_git.errors import InvalidInput, NotFound, Unprocessable
from floom_git.paths import ISSUES_DIR
from floom_git.schemas.issue import (
    ASSET_TYPES,
    COMMENTS_RE,
    FILE_RE,
    ID_RE,
    STATUSES,
    Comment,
    CommentCreate,
    IssueCreate,
    IssueDetail,
    IssueList,
    IssueOut,
    IssueProblem,
    IssueUpdate,
    check_comments_file,
    comment_line,
    comments_path,
    format_id,
    md_path,
    parse_comments,
    parse_issue_file,
    render,
)
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace
from floom_git.storage.git_types import Commit, Tree, entry_names
from floom_git.storage.repo import Changeset, WorkspaceRepo

MAX_TITLE = 300
MAX_LABELS = 50
MAX_SHORT = 200


def not_found(issue_id: str) -> NotFound:
    return NotFound(f"Issue not found: {issue_id}")


def check_id(issue_id: str) -> str:
    if not ID_RE.match(issue_id or ""):
        raise InvalidInput(f"Invalid issue id: {issue_id[:40]!r} (expected ISSUE-NNNN)")
    return issue_id


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


# -- input rules ---------------------------------------------------------------------------
def _one_line(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(f"{field}: must be a single line without control characters")
    if len(value) > limit:
        raise InvalidInput(f"{field}: must be at most {limit} characters")
    return value


def clean_title(title: str) -> str:
    title = _one_line(title, "title", MAX_TITLE)
    if not title:
        raise InvalidInput("title: must not be empty")
    return title


def clean_labels(labels: list[str]) -> list[str]:
    """Trimmed, empties dropped, de-duplicated in order (§4.3)."""
    out: list[str] = []
    for i, raw in enumerate(labels):
        label = _one_line(raw, f"labels[{i}]", 64)
        if label and label not in out:
            out.append(label)
    if len(out) > MAX_LABELS:
        raise InvalidInput(f"labels: at most {MAX_LABELS} labels")
    return out


def clean_binding(asset_type: str | None, asset_id: str | None) -> tuple[str | None, str | None]:
    asset_type = (asset_type or "").strip() or None
    asset_id = _one_line(asset_id or "", "asset_id", MAX_SHORT) or None
    if (asset_type is None) != (asset_id is None):
        raise InvalidInput("asset_type and asset_id must be given together")
    if asset_type is not None and asset_type not in ASSET_TYPES:
        raise InvalidInput(f"asset_type: must be one of {', '.join(ASSET_TYPES)}")
    return asset_type, asset_id


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()  # a hand edit that dropped the quotes around a timestamp
    return str(value)


def to_out(meta: dict[str, Any], body: str, comment_count: int) -> IssueOut:
    return IssueOut(
        id=str(meta["id"]),
        status=str(meta.get("status") or "open"),
        title=str(meta.get("title") or ""),
        body=body.strip(),
        asset_type=_text(meta.get("asset_type")),
        asset_id=_text(meta.get("asset_id")),
        source=_text(meta.get("source")),
        labels=[str(x) for x in meta.get("labels") or []],
        created_by=_text(meta.get("created_by")),
        created_at=_text(meta.get("created_at")),
        updated_at=_text(meta.get("updated_at")),
        comment_count=comment_count,
    )


def _comment(item: dict[str, Any]) -> Comment:
    return Comment(id=item["id"], body=item["body"], created_by=_text(item.get("created_by")),
                   created_at=_text(item.get("created_at")))


# -- reads (working tree) --------------------------------------------------------------------
def _inside(ws: Workspace, rel: str) -> Path | None:
    """The working-tree path of `rel`, or None when a symlink would lead it elsewhere."""
    full = ws.path / rel
    try:
        if full.resolve() != ws.path.resolve() / rel:
            return None
    except OSError:
        return None
    return full


def _read_disk(ws: Workspace, rel: str) -> bytes | None:
    full = _inside(ws, rel)
    if full is None or not full.is_file():
        return None
    try:
        return full.read_bytes()
    except OSError:
        return None


def _disk_names(ws: Workspace) -> list[str]:
    folder = _inside(ws, ISSUES_DIR)
    if folder is None or not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir()]


def _number(name: str) -> int:
    match = FILE_RE.match(name) or COMMENTS_RE.match(name)
    return int(match.group(1)) if match else 0


async def list_issues(
    ws: Workspace,
    *,
    status: str | None = None,
    label: str | None = None,
    asset_type: str | None = None,
    asset_id: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> IssueList:
    """Issues in id order, filtered; files that do not parse are listed under `errors`."""
    return await asyncio.to_thread(_list_issues, ws, status, label, asset_type, asset_id, limit,
                                   offset)


def _list_issues(ws: Workspace, status: str | None, label: str | None, asset_type: str | None,
                 asset_id: str | None, limit: int, offset: int) -> IssueList:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
    if asset_type is not None and asset_type not in ASSET_TYPES:
        raise InvalidInput(f"asset_type: must be one of {', '.join(ASSET_TYPES)}")
    names = sorted((n for n in _disk_names(ws) if FILE_RE.match(n)), key=lambda n: (_number(n), n))
    matched: list[IssueOut] = []
    problems: list[IssueProblem] = []
    for name in names:
        rel = f"{ISSUES_DIR}/{name}"
        data = _read_disk(ws, rel)
        if data is None:
            continue
        try:
            meta, body = parse_issue_file(data, where=rel)
        except InvalidInput as exc:
            problems.append(IssueProblem(path=rel, error=exc.message))
            continue
        if status and meta.get("status", "open") != status:
            continue
        if label and label not in (meta.get("labels") or []):
            continue
        if asset_type and meta.get("asset_type") != asset_type:
            continue
        if asset_id and _text(meta.get("asset_id")) != asset_id:
            continue
        comments = _read_disk(ws, comments_path(meta["id"])) or b""
        matched.append(to_out(meta, body, len(parse_comments(comments))))
    return IssueList(issues=matched[offset : offset + limit], errors=problems, total=len(matched))


async def get_issue(ws: Workspace, issue_id: str) -> IssueDetail:
    """One issue with its comments; NotFound, or Unprocessable when its file does not parse."""
    return await asyncio.to_thread(_get_issue, ws, issue_id)


def _get_issue(ws: Workspace, issue_id: str) -> IssueDetail:
    check_id(issue_id)
    data = _read_disk(ws, md_path(issue_id))
    if data is None:
        raise not_found(issue_id)
    try:
        meta, body = parse_issue_file(data, where=md_path(issue_id))
    except InvalidInput as exc:
        raise Unprocessable(exc.message) from None
    comments = [_comment(c) for c in parse_comments(_read_disk(ws, comments_path(issue_id)) or b"")]
    out = to_out(meta, body, len(comments))
    return IssueDetail(**{f: getattr(out, f) for f in out.__struct_fields__}, comments=comments)


# -- writes (branch tip, under the writer lock) ------------------------------------------------
def _tip_names(repo: WorkspaceRepo, tip: Commit | None) -> list[str]:
    folder = repo.entry(tip, ISSUES_DIR)
    return entry_names(folder) if isinstance(folder, Tree) else []


def tip_issues(repo: WorkspaceRepo, tip: Commit | None) -> dict[str, tuple[dict[str, Any], str]]:
    """Every issue at `tip` that parses, by id."""
    out = {}
    for name in _tip_names(repo, tip):
        if not FILE_RE.match(name):
            continue
        data = repo.read_blob(tip, f"{ISSUES_DIR}/{name}")
        try:
            meta, body = parse_issue_file(data or b"", where=f"{ISSUES_DIR}/{name}")
        except InvalidInput:
            continue
        out[meta["id"]] = (meta, body)
    return out


def _load_tip(repo: WorkspaceRepo, tip: Commit | None, issue_id: str) -> tuple[dict[str, Any], str]:
    data = repo.read_blob(tip, md_path(issue_id))
    if data is None:
        raise not_found(issue_id)
    try:
        return parse_issue_file(data, where=md_path(issue_id))
    except InvalidInput as exc:
        raise Unprocessable(f"{exc.message}; fix the file before changing this issue") from None


def taken_numbers(repo: WorkspaceRepo, tip: Commit | None, ws: Workspace) -> set[int]:
    """Issue numbers in use at `tip` or on disk (an on-disk file not yet synced still counts)."""
    names = _tip_names(repo, tip) + _disk_names(ws)
    return {_number(n) for n in names} - {0}


@dataclass(frozen=True)
class Dedup:
    """Find an existing issue whose front matter has all these `key: value` pairs instead of
    creating one."""

    match: dict[str, str]

    def __call__(self, meta: dict[str, Any]) -> bool:
        return all(_text(meta.get(k)) == v for k, v in self.match.items())


async def create(
    ws: Workspace,
    actor: Actor,
    body: IssueCreate,
    *,
    extra: dict[str, Any] | None = None,
    dedup: Dedup | None = None,
) -> tuple[IssueOut, bool]:
    """Create an issue (id = highest + 1, chosen under the lock); (issue, created).

    `extra` front-matter keys are written after the known ones. With `dedup`, an issue that
    already matches it is returned instead (created=False, no commit).
    Raises InvalidInput for a blank title, a half binding or bad labels.
    """
    title = clean_title(body.title)
    asset_type, asset_id = clean_binding(body.asset_type, body.asset_id)
    labels = clean_labels(body.labels)
    source = _one_line(body.source or "", "source", MAX_SHORT) or None
    text = body.body

    def build(repo: WorkspaceRepo) -> Changeset:
        tip = repo.tip()
        if dedup is not None:
            for meta, old_body in tip_issues(repo, tip).values():
                if dedup(meta):
                    log = repo.read_blob(tip, comments_path(meta["id"])) or b""
                    return Changeset(
                        {}, "", result=(to_out(meta, old_body, len(parse_comments(log))), False)
                    )
        issue_id = format_id(max(taken_numbers(repo, tip, ws), default=0) + 1)
        now = now_iso()
        meta = {"id": issue_id, "status": "open", "title": title, "asset_type": asset_type,
                "asset_id": asset_id, "source": source, "labels": labels,
                "created_by": actor.user_id, "created_at": now, "updated_at": now, **(extra or {})}
        return Changeset({md_path(issue_id): render(meta, text)},
                         f"issues: create {issue_id} {title}", result=(to_out(meta, text, 0), True))

    result = await ws.writer.write(build, actor.signature)
    return result.result  # type: ignore[return-value]


async def update(ws: Workspace, actor: Actor, issue_id: str, body: IssueUpdate) -> IssueOut:
    """Change title, body, status, labels or the asset binding; a no-op makes no commit."""
    check_id(issue_id)
    changes: dict[str, Any] = {}
    if body.title is not None:
        changes["title"] = clean_title(body.title)
    if body.status is not None:
        if body.status not in STATUSES:
            raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
        changes["status"] = body.status
    if body.labels is not None:
        changes["labels"] = clean_labels(body.labels)
    if body.clear_asset:
        if body.asset_type is not None or body.asset_id is not None:
            raise InvalidInput("clear_asset: cannot be combined with asset_type or asset_id")
        changes["asset_type"] = changes["asset_id"] = None
    elif body.asset_type is not None or body.asset_id is not None:
        changes["asset_type"], changes["asset_id"] = clean_binding(body.asset_type, body.asset_id)
        if changes["asset_type"] is None:
            raise InvalidInput(
                "asset_type and asset_id must not be empty; use clear_asset to unbind"
            )

    def build(repo: WorkspaceRepo) -> Changeset:
        tip = repo.tip()
        meta, old_body = _load_tip(repo, tip, issue_id)
        new = {**meta, **changes}
        new_body = old_body if body.body is None else body.body
        count = len(parse_comments(repo.read_blob(tip, comments_path(issue_id)) or b""))
        if render(new, new_body) == render(meta, old_body):
            return Changeset({}, "", result=to_out(meta, old_body, count))
        new["updated_at"] = now_iso()
        return Changeset({md_path(issue_id): render(new, new_body)}, f"issues: update {issue_id}",
                         result=to_out(new, new_body, count))

    result = await ws.writer.write(build, actor.signature)
    return result.result  # type: ignore[return-value]


async def comment(ws: Workspace, actor: Actor, issue_id: str, body: CommentCreate) -> Comment:
    """Append a comment (and bump the issue's updated_at) in one commit."""
    check_id(issue_id)
    text = body.body.strip()
    if not text:
        raise InvalidInput("body: a comment must not be empty")

    def build(repo: WorkspaceRepo) -> Changeset:
        tip = repo.tip()
        meta, issue_body = _load_tip(repo, tip, issue_id)
        log = repo.read_blob(tip, comments_path(issue_id)) or b""
        if log and not log.endswith(b"\n"):
            log += b"\n"
        item = {"id": f"cmt_{secrets.token_hex(8)}", "body": text, "created_by": actor.user_id,
                "created_at": now_iso()}
        meta = {**meta, "updated_at": item["created_at"]}
        return Changeset(
            {
                md_path(issue_id): render(meta, issue_body),
                comments_path(issue_id): log + comment_line(item),
            },
            f"issues: comment on {issue_id}",
            result=_comment(item),
        )

    result = await ws.writer.write(build, actor.signature)
    return result.result  # type: ignore[return-value]


# -- bundles (export / import) -------------------------------------------------------------------
def export_files(repo: WorkspaceRepo, tip: Commit | None) -> dict[str, bytes]:
    """Issue files at `tip` by bare file name (ISSUE-0001.md, ISSUE-0001.comments.ndjson)."""
    out = {}
    for name in sorted(_tip_names(repo, tip)):
        if FILE_RE.match(name) or COMMENTS_RE.match(name):
            data = repo.read_blob(tip, f"{ISSUES_DIR}/{name}")
            if data is not None:
                out[name] = data
    return out


@dataclass
class Restore:
    changes: dict[str, bytes]
    imported: list[str]
    skipped: list[tuple[str, str]]  # (name, reason)


def restore(
    repo: WorkspaceRepo,
    tip: Commit | None,
    ws: Workspace,
    files: dict[str, bytes],
    remap: Callable[[str], str | None],
) -> Restore:
    """Changes that bring bundle issue files into .floom/issues/ where the id is free.

    Never overwrites; a file that is not UTF-8 or does not parse, and a comment log without its
    issue, is skipped with a reason. `remap(worker_id)` gives a worker's new id, if it moved.
    """
    taken = taken_numbers(repo, tip, ws)
    out = Restore({}, [], [])
    groups: dict[int, dict[str, bytes]] = {}
    for name, data in files.items():
        if FILE_RE.match(name):
            groups.setdefault(_number(name), {})["md"] = data
        elif COMMENTS_RE.match(name):
            groups.setdefault(_number(name), {})["log"] = data
        else:
            out.skipped.append((name, "not an issue file name"))
    for number in sorted(groups):
        parts = groups[number]
        issue_id = format_id(number)
        if "md" not in parts:
            out.skipped.append((issue_id, "comment log without its issue"))
            continue
        if number in taken:
            out.skipped.append((issue_id, "an issue with this id already exists"))
            continue
        where = f"issues/{issue_id}.md"
        try:
            meta, body = parse_issue_file(parts["md"], where=where)
            if meta["id"] != issue_id:
                raise InvalidInput(f"{where}: id {meta['id']} does not match the file name")
            data = parts["md"]
            moved = remap(str(meta.get("asset_id"))) if meta.get("asset_type") == "worker" else None
            if moved:
                data = render({**meta, "asset_id": moved}, body)
            out.changes[md_path(issue_id)] = data
            if "log" in parts:
                check_comments_file(parts["log"], where=f"issues/{issue_id}.comments.ndjson")
                out.changes[comments_path(issue_id)] = parts["log"]
        except InvalidInput as exc:
            out.changes.pop(md_path(issue_id), None)
            out.skipped.append((issue_id, exc.message))
            continue
        out.imported.append(issue_id)
    return out

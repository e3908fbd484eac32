"""What a push must satisfy before any ref moves: pure checks over a pygit2 repository that sees
the quarantined objects (opened by the push validator when the pre-receive hook asks) and the
ref updates git reports. Also the seam for on-disk edits that a push must never overwrite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import pygit2
from pygit2.enums import DeltaStatus, FileMode, ObjectType

from floom_git import paths
from floom_git.errors import FloomError
from floom_git.paths import CONNECTIONS_FILE, TOOLS_FILE
from floom_git.schemas.agent import check_workspace_yml
from floom_git.schemas.connections import check_connections_file
from floom_git.schemas.issue import FILE_RE, parse_issue_file
from floom_git.schemas.tools import check_tools_file
from floom_git.services.push_problems import Kind, Problem
from floom_git.services.registry import validate_worker
from floom_git.storage import refs, repo_info
from floom_git.storage.handle import Handle
from floom_git.storage.repo import MAIN, WorkspaceRepo

ZERO = "0" * 40
SERVER_OWNED = "refs/heads/floom/"
# receive-pack's quarantine: objects/tmp_objdir-incoming-XXXXXX (objects/incoming-XXXXXX before
# git 2.27)
QUARANTINE_PREFIXES = ("tmp_objdir-incoming-", "incoming-")
MAX_DIRTY_SHOWN = 200  # dirty paths handed to the hook; more than that blocks any main update


class PushPolicy(msgspec.Struct, frozen=True):
    """The server's settings for one push, as of the moment its hook asks."""

    max_file_bytes: int
    dirty: tuple[str, ...] = ()  # uncommitted on-disk edits in the server's working tree
    dirty_truncated: bool = False

    @classmethod
    def for_worktree(cls, max_file_bytes: int, dirty: list[str]) -> PushPolicy:
        return cls(max_file_bytes, tuple(dirty[:MAX_DIRTY_SHOWN]), len(dirty) > MAX_DIRTY_SHOWN)


@dataclass(frozen=True)
class RefUpdate:
    old: str | None  # None: the ref is created
    new: str | None  # None: the ref is deleted
    ref: str

    @property
    def is_branch(self) -> bool:
        return self.ref.startswith("refs/heads/")


def parse_updates(text: str) -> list[RefUpdate]:
    """The `<old> <new> <ref>` lines git feeds pre-receive."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) != 3:
            continue
        old, new, ref = parts
        out.append(RefUpdate(None if old == ZERO else old, None if new == ZERO else new, ref))
    return out


def unsynced_edits(repo: WorkspaceRepo) -> list[str]:
    """On-disk edits in the server's working tree that are not committed yet.

    The seam for live sync: the caller already holds the workspace writer lock, so a sync service
    could commit these here (with repo.commit, not writer.write) and return []. Today a push that
    touches any of them is refused, naming the files, so they are never overwritten.
    """
    return repo_info.worktree_changes(repo)


def validate_quarantined(git_dir: str, quarantine: str, updates: str,
                         policy: PushPolicy) -> list[Problem]:
    """validate_push for a push still in receive-pack's quarantine `quarantine` (a folder of
    `git_dir`'s objects, as the hook reports it, relative to `git_dir` where git runs the hook or
    absolute; "" when git keeps none): a repository opened for this push alone sees the pushed
    objects through it. Raises ValueError for a folder that is no quarantine of this
    repository."""
    repo = Handle(git_dir)  # freed with this push, not at the next cyclic gc
    if quarantine:
        objects = os.path.realpath(os.path.join(git_dir, "objects"))
        folder = os.path.realpath(os.path.join(git_dir, quarantine))
        if (os.path.dirname(folder) != objects
                or not os.path.basename(folder).startswith(QUARANTINE_PREFIXES)):
            raise ValueError(f"{quarantine} is not a quarantine of this repository")
        repo.odb.add_disk_alternate(folder)
    return validate_push(repo, parse_updates(updates), policy)


def validate_push(
    repo: pygit2.Repository, updates: list[RefUpdate], policy: PushPolicy
) -> list[Problem]:
    """Every reason to refuse `updates`, each naming the ref or file; [] means accept."""
    problems = check_refs(repo, updates)
    refused = {p.where for p in problems}
    updates = [u for u in updates if u.ref not in refused]
    problems += check_new_objects(repo, new_commits(repo, updates), policy.max_file_bytes)
    for update in updates:
        if not update.is_branch or update.new is None:
            continue
        base = update.old or refs.target(repo, MAIN)
        changed = diff_paths(repo, base, update.new)
        problems += check_workspace_files(repo, update.new, changed)
        if update.ref == MAIN:
            problems += check_unsynced(changed, policy)
    return list(dict.fromkeys(problems))


def _ref(ref: str, what: str) -> Problem:
    return Problem.at(ref, Kind.REF, what)


def check_refs(repo: pygit2.Repository, updates: list[RefUpdate]) -> list[Problem]:
    """Refs a person may not move: server-owned or unknown namespaces, main deleted or rewound,
    and refs that moved on the server since the client looked."""
    problems = []
    for u in updates:
        if not u.ref.startswith(("refs/heads/", "refs/tags/")):
            problems.append(_ref(
                u.ref, "only branches (refs/heads/*) and tags (refs/tags/*) can be pushed"))
            continue
        if u.ref.startswith(SERVER_OWNED):
            problems.append(_ref(
                u.ref, "branch is owned by the server (it records runs and conversations "
                "there); fetch it, but push your work to main or another branch"))
            continue
        if u.ref == MAIN and u.new is None:
            problems.append(_ref(u.ref, "deleting main is not allowed"))
            continue
        current = refs.target(repo, u.ref)
        if current != u.old:
            now = f"now at {current[:7]}" if current else "it does not exist"
            problems.append(_ref(
                u.ref, f"changed on the server while you pushed ({now}); pull and push again"))
            continue
        if u.new is not None:
            commit = _commit(repo, u.new)
            if commit is None:
                # Only what hangs off commits is checked (every file of every new commit), so a
                # tag of a tree or a blob (or a tag of one) would carry content past the checks.
                problems.append(_ref(
                    u.ref, f"points to a {_kind(repo, u.new)}, not a commit; only commits "
                    "(and annotated tags of commits) can be pushed"))
            elif (u.is_branch and u.old is not None and u.old != u.new
                  and not repo.descendant_of(commit.id, u.old)):
                problems.append(_ref(
                    u.ref, "non-fast-forward update (force push) is not allowed; "
                    "pull, merge or rebase, and push again"))
    return problems


def new_commits(repo: pygit2.Repository, updates: Iterable[RefUpdate]) -> list[pygit2.Commit]:
    """Commits the push brings that no existing ref reaches (oldest first)."""
    tips = [c.id for u in updates if u.new and (c := _commit(repo, u.new)) is not None]
    if not tips:
        return []
    walker = repo.walk(tips[0], pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for tip in tips[1:]:
        walker.push(tip)
    for name in repo.references:
        target = _commit(repo, refs.target(repo, name))
        if target is not None:
            walker.hide(target.id)
    return list(walker)


def check_new_objects(
    repo: pygit2.Repository, commits: list[pygit2.Commit], max_file_bytes: int
) -> list[Problem]:
    """Files added or changed by any new commit (history included, not only the tip): paths
    git's own rules accept (the API's validator), no secret-bearing names, nothing over the size
    limit, no symlinks or submodules."""
    problems: list[Problem] = []
    sizes: dict[pygit2.Oid, int] = {}
    for commit in commits:
        parent = commit.parents[0].tree if commit.parents else None
        diff = (
            parent.diff_to_tree(commit.tree)
            if parent is not None
            else commit.tree.diff_to_tree(swap=True)
        )
        where = f"(commit {str(commit.id)[:7]})"
        for delta in diff.deltas:
            if delta.status == DeltaStatus.DELETED:
                continue
            path, mode = delta.new_file.path, delta.new_file.mode
            why = _path_refused(delta.new_file.raw_path, mode == FileMode.LINK)
            if why:
                problems.append(Problem.at(path, Kind.PATH, f"{why} {where}"))
                continue
            if mode == FileMode.COMMIT:
                problems.append(Problem.at(path, Kind.SUBMODULE,
                                           f"submodules are not supported {where}"))
                continue
            if mode == FileMode.LINK:
                problems.append(Problem.at(path, Kind.SYMLINK,
                                           f"symbolic links are not supported {where}"))
                continue
            if paths.is_secret_file(path):
                problems.append(Problem.at(
                    path, Kind.SECRET, "secret-bearing files (.env, .env.*, *.pem, *.key) cannot "
                    f"be pushed; store the value with the secrets API {where}"))
            oid = delta.new_file.id
            if oid not in sizes:
                sizes[oid] = repo.odb.read_header(oid)[1]
            if sizes[oid] > max_file_bytes:
                problems.append(
                    Problem.at(
                        path,
                        Kind.TOO_LARGE,
                        f"{sizes[oid]} bytes is over the {max_file_bytes}-byte file size limit "
                        f"{where}",
                    )
                )
    return problems


def check_workspace_files(repo: pygit2.Repository, rev: str,
                          changed: list[str]) -> list[Problem]:
    """As of commit `rev`: every changed path has the kind (file or folder) the workspace reads
    there, each worker folder the push touched validates as a whole (manifest, folder == name,
    entry file), each touched issue file parses, and so do workspace.yml and the registries."""
    commit = _commit(repo, rev)
    if commit is None:
        return []
    tree = commit.tree
    problems = check_kinds(tree, changed)
    workers = sorted(
        {
            p.split("/")[1]
            for p in changed
            if p.startswith(paths.WORKERS_DIR + "/") and p.count("/") >= 2
        }
    )
    for wid in workers:
        files = _files_under(repo, tree, f"{paths.WORKERS_DIR}/{wid}")
        if not files:
            continue  # the worker was deleted
        # Only worker.yml's content matters; the other files need to exist, not be read.
        contents = {f: b"" for f in files}
        if paths.MANIFEST in files:
            manifest = _file(repo, tree, f"{paths.worker_dir(wid)}/{paths.MANIFEST}")
            contents[paths.MANIFEST] = manifest or b""
        problems += _invalid(paths.worker_dir(wid), validate_worker, wid, contents)
    if paths.WORKSPACE_YML in changed and (
            data := _file(repo, tree, paths.WORKSPACE_YML)) is not None:
        # the `agent:` block (provider settings) must validate too
        problems += _invalid(paths.WORKSPACE_YML, check_workspace_yml, data)
    for path in changed:
        if not paths.is_issue_file(path):
            continue
        if (data := _file(repo, tree, path)) is None:
            continue  # deleted, or not a file (check_kinds)
        if not FILE_RE.match(path.rpartition("/")[2]):
            problems.append(
                Problem.at(path, Kind.INVALID, "issue files are named ISSUE-<number>.md")
            )
            continue
        problems += _invalid(path, parse_issue_file, data, where=path)
    return problems + check_registries(repo, tree, changed)


def check_registries(repo: pygit2.Repository, tree: pygit2.Tree,
                     changed: list[str]) -> list[Problem]:
    """.floom/connections.yml when touched; workspace-tools.yml when it or any worker is touched
    (each tool's worker must still exist)."""
    problems = []
    if CONNECTIONS_FILE in changed and (data := _file(repo, tree, CONNECTIONS_FILE)) is not None:
        problems += [Problem(CONNECTIONS_FILE, Kind.INVALID, line)
                     for line in check_connections_file(data)]
    touched_worker = any(p.startswith(paths.WORKERS_DIR + "/") for p in changed)
    if (TOOLS_FILE in changed or touched_worker) and (
            data := _file(repo, tree, TOOLS_FILE)) is not None:
        folder = tree[paths.WORKERS_DIR] if paths.WORKERS_DIR in tree else None
        ids: set[str] = set()
        if folder is not None and folder.type == ObjectType.TREE:  # a tree's entries all have names
            ids = {e.name for e in cast(pygit2.Tree, repo[folder.id]) if e.name is not None}
        problems += [Problem(TOOLS_FILE, Kind.INVALID, line)
                     for line in check_tools_file(data, ids)]
    return problems


def check_kinds(tree: pygit2.Tree, changed: list[str]) -> list[Problem]:
    """Each changed path that is a file as of `tree` stands where the workspace may read a file
    (paths.misplaced): not under a path it reads as a file (a file turned into a folder, or a
    new folder with such a name), nor where it reads a folder."""
    problems = []
    for path in changed:
        obj = tree[path] if path in tree else None
        if obj is None or obj.type != ObjectType.BLOB:
            continue
        if (found := paths.misplaced(path, paths.FILE)) is not None:
            where, what = found
            problems.append(Problem.at(where, Kind.WRONG_KIND, what))
    return problems


def check_unsynced(changed: list[str], policy: PushPolicy) -> list[Problem]:
    """A push to main may not overwrite on-disk edits the server has not committed yet."""
    if not changed:
        return []
    if policy.dirty_truncated:
        return [Problem.at(
            policy.dirty[0], Kind.UNSYNCED, f"the server's working tree has more than "
            f"{MAX_DIRTY_SHOWN} uncommitted on-disk edits; wait until they are synced, pull, "
            "and push again")]
    hit = [d for d in policy.dirty if any(_overlaps(d, c) for c in changed)]
    return [
        Problem.at(d, Kind.UNSYNCED, "has uncommitted on-disk edits on the server that this "
                   "push would overwrite; wait until they are synced (or POST /workers/reload), "
                   "pull, and push again")
        for d in hit
    ]


def diff_paths(repo: pygit2.Repository, old: str | None, new: str | None) -> list[str]:
    """File paths that differ between two commits (None: the empty tree)."""
    a = _commit(repo, old)
    b = _commit(repo, new)
    if b is None:
        if a is None:
            return []
        diff = a.tree.diff_to_tree()
    elif a is None:
        diff = b.tree.diff_to_tree(swap=True)
    else:
        diff = a.tree.diff_to_tree(b.tree)
    return sorted({d.new_file.path for d in diff.deltas} | {d.old_file.path for d in diff.deltas})


def _files_under(repo: pygit2.Repository, tree: pygit2.Tree, folder: str) -> dict[str, pygit2.Oid]:
    try:
        obj = tree[folder]
    except KeyError:
        return {}
    if obj.type != ObjectType.TREE:
        return {}
    out: dict[str, pygit2.Oid] = {}
    stack = [("", cast(pygit2.Tree, repo[obj.id]))]
    while stack:
        prefix, sub = stack.pop()
        for item in sub:
            rel = f"{prefix}{item.name}"
            if item.type == ObjectType.TREE:
                stack.append((rel + "/", cast(pygit2.Tree, repo[item.id])))
            else:
                out[rel] = item.id
    return out


def _file(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> bytes | None:
    """The content of the file at `path` in `tree`; None when there is none (deleted, or
    something else stands there, which check_kinds and check_new_objects
    refuse)."""
    obj = tree[path] if path in tree else None
    if obj is None or obj.type != ObjectType.BLOB:
        return None
    return cast(pygit2.Blob, repo[obj.id]).data


def _invalid(subject: str, check: Callable[..., object], /, *args: Any,
             **kw: Any) -> list[Problem]:
    """Run a validator that raises FloomError; its message already names the file."""
    try:
        check(*args, **kw)
    except FloomError as exc:
        return [Problem(subject, Kind.INVALID, exc.message)]
    return []


def _commit(repo: pygit2.Repository, rev: str | None) -> pygit2.Commit | None:
    if not rev:
        return None
    try:
        return repo[rev].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def _path_refused(raw: bytes, symlink: bool) -> str | None:
    """Why the path validator every door shares refuses `raw` (None: it accepts it)."""
    try:
        return paths.path_refusal(raw.decode("utf-8"), symlink=symlink)
    except UnicodeDecodeError:
        return "is not valid UTF-8"


def _kind(repo: pygit2.Repository, rev: str) -> str:
    """What `rev` finally names once tags are peeled: tree, blob, ..."""
    try:
        obj = repo[rev]
        for _ in range(64):  # a chain of tags; git itself gives up far sooner
            if obj.type != ObjectType.TAG:
                break
            obj = repo[cast(pygit2.Tag, obj).target]
        return obj.type_str
    except (KeyError, ValueError, pygit2.GitError):
        return "missing object"


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")

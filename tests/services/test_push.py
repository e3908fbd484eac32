"""Push validation rules (services/push.py) over real repositories, and the ref-move journal."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from floom_git.schemas.issue import render
from floom_git.services.push import (
    ZERO,
    PushPolicy,
    RefUpdate,
    parse_updates,
)
from floom_git.services.push import (
    validate_push as validate_push_records,
)
from floom_git.services.push_problems import Kind, format_rejection
from floom_git.storage.repo import MAIN, RUNS, Changeset, WorkspaceRepo, signature
from tests.conftest import WORKER_YML, git

SIG = signature("tester", "tester@example.com")
POLICY = PushPolicy(max_file_bytes=1000)
ISSUE = render({"id": "ISSUE-0001", "status": "open", "title": "Fix it"}, "Body")


@pytest.fixture
def ws(tmp_path: Path) -> WorkspaceRepo:
    files = {
        "workspace.md": b"# ws\n",
        "workers/hello-world/worker.yml": WORKER_YML.format(
            name="hello-world", title="Hi"
        ).encode(),
        "workers/hello-world/run.py": b"print('hi')\n",
        ".floom/issues/ISSUE-0001.md": ISSUE,
    }
    return WorkspaceRepo.create(tmp_path / "ws", files, "init", SIG)


def commit_on(
    repo: pygit2.Repository,
    parent: str,
    changes: dict[str, bytes | None],
    mode: int = FileMode.BLOB,
) -> str:
    """A commit on top of `parent` that no ref points to (as a push would bring it)."""
    index = pygit2.Index()
    index.read_tree(repo[parent].peel(pygit2.Commit).tree)
    for path, data in changes.items():
        if data is None:
            index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    tree = index.write_tree(repo)
    return str(repo.create_commit(None, SIG, SIG, "pushed", tree, [parent]))


def validate_push(repo: pygit2.Repository, updates: list[RefUpdate],
                  policy: PushPolicy) -> list[str]:
    """The lines the person pushing reads, one per problem."""
    return [p.line for p in validate_push_records(repo, updates, policy)]


def main_sha(ws: WorkspaceRepo) -> str:
    return str(ws.tip().id)


def check(
    ws: WorkspaceRepo,
    changes: dict[str, bytes | None],
    policy: PushPolicy = POLICY,
    ref: str = MAIN,
) -> list[str]:
    old = main_sha(ws)
    new = commit_on(ws.repo, old, changes)
    return validate_push(ws.repo, [RefUpdate(old if ref == MAIN else None, new, ref)], policy)


def manifest(name: str = "hello-world", **extra: str) -> bytes:
    text = WORKER_YML.format(name=name, title="Hi")
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    return text.encode()


@pytest.mark.parametrize(
    "changes",
    [
        {"workers/hello-world/worker.yml": manifest().replace(b"Hi", b"Hello there")},
        {"workers/new-one/worker.yml": manifest("new-one"), "workers/new-one/run.py": b"x = 1\n"},
        {"workers/hello-world/worker.yml": None, "workers/hello-world/run.py": None},
        {"contexts/notes/a.md": b"# notes\n", "workspace.md": b"# new\n"},
        {".floom/issues/ISSUE-0002.md": render({"id": "ISSUE-0002", "title": "Two"}, "b")},
        {".floom/issues/ISSUE-0001.comments.ndjson": b'{"body": "hi"}\n'},
        {"big.bin": b"x" * 1000},
    ],
    ids=[
        "edit-worker",
        "add-worker",
        "delete-worker",
        "context-and-md",
        "add-issue",
        "comments",
        "at-size-limit",
    ],
)
def test_validate_push_accepts_valid_changes(ws, changes):
    assert check(ws, changes) == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"workers/hello-world/worker.yml": manifest(triggers="[{type: cronn}]")},
            "workers/hello-world/worker.yml: Invalid enum value 'cronn' (allowed: composio, cron, "
            "manual, schedule, scheduled, webhook) - at "
            "`$.triggers[0].type`",
        ),
        (
            {"workers/hello-world/worker.yml": b"name: [unclosed\n"},
            "workers/hello-world/worker.yml:",
        ),
        (
            {
                "workers/other-name/worker.yml": manifest("hello-world"),
                "workers/other-name/run.py": b"",
            },
            "workers/other-name/worker.yml: name 'hello-world' must equal its folder name "
            "'other-name'",
        ),
        (
            {
                "workers/Bad_Folder/worker.yml": manifest("bad-folder"),
                "workers/Bad_Folder/run.py": b"",
            },
            "workers/Bad_Folder: folder name must be a slug",
        ),
        ({"workers/hello-world/run.py": None}, "entry file 'run.py' is missing"),
        ({"workers/no-manifest/run.py": b"x"}, "workers/no-manifest/worker.yml: file is missing"),
        (
            {".floom/issues/ISSUE-0001.md": b"no front matter\n"},
            ".floom/issues/ISSUE-0001.md: missing YAML front matter",
        ),
        (
            {
                ".floom/issues/ISSUE-0003.md": render(
                    {"id": "ISSUE-0003", "status": "done", "title": "x"}, ""
                )
            },
            ".floom/issues/ISSUE-0003.md: status must be open or closed",
        ),
        (
            {".floom/issues/ISSUE-abc.md": ISSUE},
            ".floom/issues/ISSUE-abc.md: issue files are named",
        ),
        ({".env": b"A=1\n"}, ".env: secret-bearing files"),
        (
            {"workers/hello-world/.env.local": b"A=1\n"},
            "workers/hello-world/.env.local: secret-bearing",
        ),
        ({"contexts/c/server.pem": b"-----BEGIN\n"}, "contexts/c/server.pem: secret-bearing"),
        ({"contexts/c/id.KEY": b"k"}, "contexts/c/id.KEY: secret-bearing"),
        (
            {"contexts/c/big.bin": b"x" * 1001},
            "contexts/c/big.bin: 1001 bytes is over the 1000-byte",
        ),
    ],
    ids=[
        "bad-enum",
        "bad-yaml",
        "folder-not-name",
        "bad-folder",
        "missing-entry",
        "no-manifest",
        "issue-no-front",
        "issue-bad-status",
        "issue-bad-name",
        "dotenv",
        "dotenv-local",
        "pem",
        "key",
        "oversize",
    ],
)
def test_validate_push_refuses_bad_files(ws, changes, expected):
    problems = check(ws, changes)
    assert any(expected in p for p in problems), problems


def test_validate_push_names_every_bad_file(ws):
    new = commit_on(ws.repo, main_sha(ws), {
        ".env": b"A=1\n",
        "workers/hello-world/worker.yml": b"name: 1\n",
        "contexts/c/big.bin": b"x" * 2000,
    })
    records = validate_push_records(ws.repo, [RefUpdate(main_sha(ws), new, MAIN)], POLICY)
    problems = [p.line for p in records]
    assert [p.split(":")[0] for p in problems] == [
        ".env",
        "contexts/c/big.bin",
        "workers/hello-world/worker.yml",
    ]
    assert [(p.where, p.kind) for p in records] == [
        (".env", Kind.SECRET), ("contexts/c/big.bin", Kind.TOO_LARGE),
        ("workers/hello-world", Kind.INVALID)]
    text = format_rejection(records)
    assert text.splitlines()[1:] == [f"  - {line}" for line in problems]
    assert text.splitlines()[0].startswith("push rejected")
    assert all(line.startswith("  - ") for line in text.splitlines()[1:])


def test_validate_push_refuses_secret_removed_in_a_later_commit(ws):
    old = main_sha(ws)
    first = commit_on(ws.repo, old, {"config/.env": b"TOKEN=x\n"})
    second = commit_on(ws.repo, first, {"config/.env": None})
    problems = validate_push(ws.repo, [RefUpdate(old, second, MAIN)], POLICY)
    assert len(problems) == 1 and problems[0].startswith("config/.env: secret-bearing")
    assert f"(commit {first[:7]})" in problems[0]


def test_validate_push_refuses_symlinks(ws):
    old = main_sha(ws)
    new = commit_on(ws.repo, old, {"contexts/c/link": b"/etc/passwd"}, mode=FileMode.LINK)
    problems = validate_push(ws.repo, [RefUpdate(old, new, MAIN)], POLICY)
    assert problems and "symbolic links are not supported" in problems[0]


def test_validate_push_ignores_untouched_invalid_worker(ws):
    ws.commit(Changeset({"workers/broken/worker.yml": b"name: 1\n"}, "broken via disk"), SIG)
    assert check(ws, {"workspace.md": b"# other\n"}) == []
    assert check(ws, {"workers/broken/notes.md": b"x"})[0].startswith("workers/broken/worker.yml")


@pytest.mark.parametrize(
    "ref, expected",
    [
        (RUNS, "refs/heads/floom/runs: branch is owned by the server"),
        ("refs/heads/floom/anything", "refs/heads/floom/anything: branch is owned by the server"),
        ("refs/notes/commits", "refs/notes/commits: only branches"),
        ("refs/pull/1/head", "refs/pull/1/head: only branches"),
    ],
)
def test_validate_push_refuses_server_owned_refs(ws, ref, expected):
    assert check(ws, {"a.txt": b"a"}, ref=ref) == [expected + check_tail(expected)]


def check_tail(expected: str) -> str:
    if "owned by the server" in expected:
        return (" (it records runs and conversations there); fetch it, but push your work to main "
                "or another branch")
    return " (refs/heads/*) and tags (refs/tags/*) can be pushed"


def test_validate_push_refuses_main_deletion_and_rewind(ws):
    first = main_sha(ws)
    ws.commit(Changeset({"a.txt": b"a"}, "second"), SIG)
    second = main_sha(ws)
    deleted = validate_push(ws.repo, [RefUpdate(second, None, MAIN)], POLICY)
    assert deleted == ["refs/heads/main: deleting main is not allowed"]
    rewound = validate_push(ws.repo, [RefUpdate(second, first, MAIN)], POLICY)
    assert rewound and "non-fast-forward" in rewound[0]
    sideways = commit_on(ws.repo, first, {"b.txt": b"b"})
    assert (
        "non-fast-forward" in validate_push(ws.repo, [RefUpdate(second, sideways, MAIN)], POLICY)[0]
    )


def test_validate_push_refuses_stale_old_value(ws):
    stale = main_sha(ws)
    ws.commit(Changeset({"a.txt": b"a"}, "api write"), SIG)
    new = commit_on(ws.repo, stale, {"b.txt": b"b"})
    problems = validate_push(ws.repo, [RefUpdate(stale, new, MAIN)], POLICY)
    assert problems == [
        (
            f"refs/heads/main: changed on the server while you pushed (now at "
            f"{main_sha(ws)[:7]}); pull and push again"
        )
    ]


def test_validate_push_checks_new_branches_against_main(ws):
    new = commit_on(ws.repo, main_sha(ws), {"workers/hello-world/worker.yml": b"name: 1\n"})
    problems = validate_push(ws.repo, [RefUpdate(None, new, "refs/heads/feature")], POLICY)
    assert problems and problems[0].startswith("workers/hello-world/worker.yml")
    ok = commit_on(ws.repo, main_sha(ws), {"notes.md": b"n"})
    assert validate_push(ws.repo, [RefUpdate(None, ok, "refs/heads/feature")], POLICY) == []
    assert validate_push(ws.repo, [RefUpdate(None, ok, "refs/tags/v1")], POLICY) == []


@pytest.mark.parametrize(
    "dirty, refused",
    [
        (("workers/hello-world/run.py",), True),
        (("workers/hello-world",), True),  # an untracked folder where the push writes files
        (("workspace.md",), False),
        ((), False),
    ],
)
def test_validate_push_protects_unsynced_edits(ws, dirty, refused):
    policy = PushPolicy(max_file_bytes=1000, dirty=dirty)
    problems = check(ws, {"workers/hello-world/run.py": b"print(2)\n"}, policy)
    if refused:
        assert problems == [
            (
                f"{dirty[0]}: has uncommitted on-disk edits on the server that "
                "this push would overwrite; wait until they are synced (or POST "
                "/workers/reload), pull, and push again"
            )
        ]
    else:
        assert problems == []


def test_validate_push_refuses_main_when_too_many_unsynced_edits(ws):
    dirty = [f"scratch/{i}.txt" for i in range(500)]
    policy = PushPolicy.for_worktree(1000, dirty)
    assert policy.dirty_truncated and len(policy.dirty) < len(dirty)
    assert "more than" in check(ws, {"workspace.md": b"x"}, policy)[0]


def test_parse_updates_reads_hook_input():
    text = f"{ZERO} {'a' * 40} refs/heads/x\n{'b' * 40} {ZERO} refs/tags/t\ngarbage\n"
    assert parse_updates(text) == [
        RefUpdate(None, "a" * 40, "refs/heads/x"),
        RefUpdate("b" * 40, None, "refs/tags/t"),
    ]


def test_recover_syncs_worktree_after_interrupted_push(ws):
    old = main_sha(ws)
    ws.begin_ref_move(old)
    new = commit_on(ws.repo, old, {"workspace.md": b"# pushed\n", "added.txt": b"new\n"})
    ws.repo.references[MAIN].set_target(new)  # receive-pack moved main, then the server died
    assert "workspace.md" in git(ws.path, "status", "--porcelain")
    reopened = WorkspaceRepo(ws.path)
    assert reopened.recover() == ["added.txt", "workspace.md"]
    assert (ws.path / "added.txt").read_bytes() == b"new\n"
    assert git(ws.path, "status", "--porcelain") == ""


def test_finish_ref_move_without_change_clears_journal(ws):
    ws.begin_ref_move(main_sha(ws))
    assert ws.finish_ref_move(main_sha(ws)) == []
    assert WorkspaceRepo(ws.path).recover() == []


def _mktree(ws: WorkspaceRepo, lines: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(ws.path), "mktree"], input=lines.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


@pytest.mark.parametrize("name", [".git.", "GIT~1", ".g\u200cit", ".GIT", ".git\ufeff"])
def test_validate_push_refuses_paths_git_refuses(ws, name):
    """libgit2 refuses to build such trees; git mktree does not, and a push can carry them."""
    old = main_sha(ws)
    blob = ws.repo.create_blob(b"[core]\n")
    inner = _mktree(ws, f"100644 blob {blob}\tconfig\n")
    notes = _mktree(ws, f"040000 tree {inner}\t{name}\n")
    root = git(ws.path, "ls-tree", "main") + f"040000 tree {notes}\tnotes\n"
    tree = _mktree(ws, root)
    new = str(ws.repo.create_commit(None, SIG, SIG, "sneaky", pygit2.Oid(hex=tree),
                                    [pygit2.Oid(hex=old)]))
    problems = validate_push(ws.repo, [RefUpdate(old, new, MAIN)], POLICY)
    assert any(p.startswith(f"notes/{name}/config:") and "git reads as .git" in p
               for p in problems), problems

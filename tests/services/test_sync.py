"""services.sync against real workspace repositories: what an on-disk edit commits, and what not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.services import sync
from floom_git.services.workspaces import Workspace, WorkspaceManager
from tests.conftest import commit_count, git

RUN_PY = "workers/word-count/run.py"
MANIFEST = "workers/word-count/worker.yml"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    settings = Settings(
        data_dir=tmp_path / "data",
        watch=False,
        sync_author_name="Disk Editor",
        sync_author_email="disk@example.com",
        max_file_bytes=1000,
    )
    manager = WorkspaceManager(settings)
    manager.open_all()
    return manager.create_sync("default")


def write(ws: Workspace, rel: str, text: str) -> None:
    path = ws.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def subjects(ws: Workspace) -> list[str]:
    return git(ws.path, "log", "--format=%s").splitlines()


def assert_consistent(ws: Workspace) -> None:
    assert git(ws.path, "status", "--porcelain") == ""
    git(ws.path, "fsck", "--strict")


@pytest.mark.parametrize(
    "candidates", [[RUN_PY], ["workers/word-count"], None], ids=["file", "folder", "whole-tree"]
)
async def test_reconcile_edit_commits_as_sync_author(ws, candidates):
    write(ws, RUN_PY, "print('edited on disk')\n")
    result = await sync.reconcile(ws, candidates)
    assert result.committed == [RUN_PY]
    assert git(ws.path, "log", "-1", "--format=%s|%an|%ae").strip() == (
        f"sync: on-disk edit to {RUN_PY}|Disk Editor|disk@example.com"
    )
    assert git(ws.path, "show", "HEAD:" + RUN_PY) == "print('edited on disk')\n"
    assert result.workers == {"word-count"}
    event = ws.events.since(0)[0][-1]
    assert (event.type, event.data["sha"], event.data["paths"]) == ("sync", result.short, [RUN_PY])
    assert_consistent(ws)


async def test_reconcile_unchanged_content_makes_no_commit(ws):
    before = commit_count(ws.path)
    (ws.path / RUN_PY).write_bytes((ws.path / RUN_PY).read_bytes())  # rewritten, same bytes
    result = await sync.reconcile(ws, [RUN_PY, "workspace.md", "no/such/file"])
    assert (result.sha, result.committed, result.invalid) == (None, [], {})
    assert commit_count(ws.path) == before
    assert ws.events.since(0)[0] == []


async def test_reconcile_invalid_manifest_shows_error_and_commits_other_changes(ws):
    before = commit_count(ws.path)
    write(ws, MANIFEST, (ws.path / MANIFEST).read_text().replace("version: 1.0.0", "version: one"))
    write(ws, RUN_PY, "print('held back')\n")
    write(ws, "contexts/company/about.md", "# About, edited\n")
    result = await sync.reconcile(ws, [MANIFEST, RUN_PY, "contexts/company/about.md"])
    assert result.committed == ["contexts/company/about.md"]
    assert "$.version" in result.invalid["workers/word-count"]
    entry = ws.workers.get("word-count")
    assert entry.status == "error" and "$.version" in entry.error
    assert commit_count(ws.path) == before + 1
    assert sorted(git(ws.path, "status", "--porcelain", "workers").splitlines()) == [
        f" M {RUN_PY}",
        f" M {MANIFEST}",
    ]

    # Fixing the manifest commits it together with the run.py edit that was held back.
    write(ws, MANIFEST, (ws.path / MANIFEST).read_text().replace("version: one", "version: 1.1.0"))
    result = await sync.reconcile(ws, [MANIFEST])
    assert result.committed == [RUN_PY, MANIFEST]
    assert result.invalid == {}
    assert ws.workers.get("word-count").status == "ready"
    assert ws.workers.get("word-count").manifest.version == "1.1.0"
    assert_consistent(ws)


@pytest.mark.parametrize(
    "rel,why",
    [
        ("contexts/company/.env", None),  # gitignored: silently left alone
        ("contexts/company/.env.local", None),
        ("contexts/company/server.pem", "secret-bearing"),
        ("contexts/company/id.key", "secret-bearing"),
        ("contexts/company/big.txt", "size limit"),
        (".floom/issues/ISSUE-0001.md", "front matter"),
    ],
)
async def test_reconcile_refused_file_is_never_committed(ws, rel, why):
    before = commit_count(ws.path)
    write(ws, rel, "x" * 2000 if "big" in rel else "TOKEN=1\n")
    result = await sync.reconcile(ws, None)
    assert result.sha is None and commit_count(ws.path) == before
    if why is None:
        assert result.invalid == {}
    else:
        assert why in result.invalid[rel] and result.invalid[rel].startswith(rel)
    assert rel not in git(ws.path, "ls-files")


async def test_reconcile_secret_in_worker_folder_blocks_that_worker(ws):
    write(ws, "workers/word-count/deploy.pem", "-----BEGIN-----\n")
    write(ws, RUN_PY, "print('x')\n")
    result = await sync.reconcile(ws, None)
    assert result.sha is None
    assert "secret-bearing" in result.invalid["workers/word-count"]
    assert ws.workers.get("word-count").status == "error"


async def test_reconcile_deleted_files_become_deletions(ws):
    (ws.path / "contexts/company/about.md").unlink()
    for f in (ws.path / "workers/research-brief").iterdir():
        f.unlink()
    (ws.path / "workers/research-brief").rmdir()
    result = await sync.reconcile(ws, ["contexts/company/about.md", "workers/research-brief"])
    assert result.committed == [
        "contexts/company/about.md",
        "workers/research-brief/SKILL.md",
        "workers/research-brief/worker.yml",
    ]
    assert subjects(ws)[0] == (
        "sync: on-disk edit to contexts/company/about.md, "
        "workers/research-brief/SKILL.md, workers/research-brief/worker.yml"
    )
    tracked = git(ws.path, "ls-files").splitlines()
    assert "contexts/company/about.md" not in tracked
    assert not any(p.startswith("workers/research-brief/") for p in tracked)
    assert ws.workers.get("research-brief") is None
    assert_consistent(ws)


async def test_reconcile_new_worker_folder_is_committed_whole(ws):
    write(
        ws,
        "workers/new-one/worker.yml",
        (ws.path / MANIFEST).read_text().replace("name: word-count", "name: new-one"),
    )
    write(ws, "workers/new-one/run.py", "print('new')\n")
    write(ws, "workers/new-one/__pycache__/run.cpython-311.pyc", "cache")
    write(ws, "workers/new-one/.run.py.swp", "swap")
    result = await sync.reconcile(ws, ["workers/new-one"])  # the folder event only
    assert result.committed == ["workers/new-one/run.py", "workers/new-one/worker.yml"]
    assert ws.workers.get("new-one").status == "ready"


async def test_reconcile_symlinks_are_not_followed(ws, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the workspace\n")
    os.symlink(outside, ws.path / "contexts/linked")
    os.symlink(outside / "secret.txt", ws.path / "contexts/company/link.txt")
    result = await sync.reconcile(
        ws, ["contexts/linked", "contexts/linked/secret.txt", "contexts/company/link.txt"]
    )
    assert result.sha is None
    assert "symlinks are not committed" in result.invalid["contexts/company/link.txt"]
    assert "linked" not in git(ws.path, "ls-files")


async def test_reconcile_file_replaced_by_folder(ws):
    write(ws, "notes.md", "a file\n")
    await sync.reconcile(ws, ["notes.md"])
    (ws.path / "notes.md").unlink()
    write(ws, "notes.md/part.md", "now a folder\n")
    result = await sync.reconcile(ws, ["notes.md"])
    assert result.committed == ["notes.md", "notes.md/part.md"]
    assert git(ws.path, "show", "HEAD:notes.md/part.md") == "now a folder\n"
    assert_consistent(ws)


async def test_reconcile_many_files_makes_one_commit(ws):
    before = commit_count(ws.path)
    for i in range(300):
        write(ws, f"contexts/bulk/f{i:03}.md", f"file {i}\n")
    result = await sync.reconcile(ws, None)
    assert len(result.committed) == 300
    assert commit_count(ws.path) == before + 1
    assert subjects(ws)[0] == (
        "sync: on-disk edit to contexts/bulk/f000.md, contexts/bulk/f001.md and 298 more"
    )
    assert_consistent(ws)


@pytest.mark.parametrize(
    "changed,shown",
    [
        (["a"], "a"),
        (["a", "b", "c"], "a, b, c"),
        (["a", "b", "c", "d"], "a, b and 2 more"),
        ([f"p{i}" for i in range(14)], "p0, p1 and 12 more"),
    ],
)
def test_message_shortens_long_path_lists(changed, shown):
    assert sync.message(changed) == f"sync: on-disk edit to {shown}"


@pytest.mark.parametrize(
    "rel,transient",
    [
        ("workers/x/run.py", False),
        ("workers/x/.floom-abc123", True),
        ("workers/x/__pycache__/run.cpython-311.pyc", True),
        ("workers/x/.run.py.swp", True),
        ("workers/x/run.py~", True),
        (".git/index", True),
        (".floom/issues/ISSUE-0001.md", False),
    ],
)
def test_is_transient_classifies_paths(rel, transient):
    assert sync.is_transient(rel) is transient


async def test_reconcile_whole_tree_after_branch_checkout_on_disk(ws):
    """A person checks out another branch in the working tree: main takes the disk state."""
    git(ws.path, "checkout", "-qb", "elsewhere")
    (ws.path / "workspace.md").write_text("# Elsewhere\n")
    git(ws.path, "commit", "-qam", "elsewhere")
    result = await sync.reconcile(ws, None)
    assert result.committed == ["workspace.md"]
    assert git(ws.path, "rev-parse", "main^{tree}") == git(ws.path, "rev-parse", "elsewhere^{tree}")
    assert_consistent(ws)


def test_registry_late_result_of_an_early_read_is_not_applied(tmp_path):
    """A reload that read the disk first but finishes last must not win."""
    import threading

    from floom_git.services import registry as reg
    from floom_git.services.registry import WorkerRegistry
    from floom_git.storage.repo import Changeset, WorkspaceRepo, signature

    repo = WorkspaceRepo.create(
        tmp_path / "ws", {"workspace.md": b"x"}, "init", signature("a", "a@b")
    )
    workers = WorkerRegistry(repo)
    slow_started, release = threading.Event(), threading.Event()
    real = reg.load_entry

    def slow_load(root, wid, r=None):  # the early reader sees no folder yet, then stalls
        entry = real(root, wid, r)
        slow_started.set()
        release.wait(10)
        return entry

    reg.load_entry = slow_load
    try:
        early = threading.Thread(target=workers.reload, args=(["hello-world"],))
        early.start()
        assert slow_started.wait(10)
    finally:
        reg.load_entry = real
    yml = ("schema_version: '0.3'\nname: hello-world\ntitle: H\nversion: 1.0.0\n"
           "exec:\n  entry: run.py\n")
    repo.commit(Changeset({"workers/hello-world/worker.yml": yml.encode(),
                           "workers/hello-world/run.py": b"x"}, "create"), signature("a", "a@b"))
    workers.reload(["hello-world"])
    assert workers.get("hello-world") is not None
    release.set()
    early.join(10)
    assert workers.get("hello-world") is not None


def replace_on_disk(ws: Workspace, path: str, file: bool) -> None:
    """Whatever stands at `path` on disk becomes a file (`file`) or a folder holding one."""
    full = ws.path / path
    if full.is_dir():
        shutil.rmtree(full)
    elif full.exists():
        full.unlink()
    write(ws, path if file else f"{path}/inside.md", "x\n")


async def assert_refused_then_recovers(ws: Workspace, path: str, file: bool, line: str) -> None:
    """Nothing committed (not even the deletion of what stood there), the refusal names the
    path; once the disk is put back the workspace syncs edits again."""
    before = git(ws.path, "log", "--format=%H", "main")
    result = await sync.reconcile(ws, None)
    assert result.sha is None, result.committed
    assert git(ws.path, "log", "--format=%H", "main") == before
    assert line in result.invalid.values(), result.invalid
    again = await sync.reconcile(ws, [path])  # the watcher's event for that path alone
    assert again.sha is None and line in again.invalid.values(), again.invalid
    assert git(ws.path, "log", "--format=%H", "main") == before
    replace_on_disk(ws, path, not file)
    git(ws.path, "checkout", "-f", "main", "--", ".")
    git(ws.path, "clean", "-fdq")
    write(ws, RUN_PY, "print('after')\n")
    result = await sync.reconcile(ws, None)
    assert result.committed == [RUN_PY] and result.invalid == {}
    assert_consistent(ws)


@pytest.mark.parametrize("folder", [".floom/issues/ISSUE-0042.md", "workspace.yml",
                                    ".floom/connections.yml", "workers/word-count/worker.yml",
                                    "contexts/company/context.yml", "workspace-tools.yml",
                                    ".floom/issues/ISSUE-0001.comments.ndjson"])
async def test_reconcile_never_commits_a_folder_where_a_file_is_read(ws, folder):
    """The rule a push keeps (tests/compat/test_push_file_kinds.py): files under such a folder
    stay uncommitted, named by the folder."""
    replace_on_disk(ws, folder, file=False)
    await assert_refused_then_recovers(ws, folder, False,
                                       f"{folder}: must be a file, not a folder")


@pytest.mark.parametrize("path", ["workers", "workers/word-count", "workers/brand-new", "contexts",
                                  "contexts/company", "contexts/brand-new", ".floom",
                                  ".floom/issues"])
async def test_reconcile_never_commits_a_file_where_a_folder_is_read(ws, path):
    replace_on_disk(ws, path, file=True)
    await assert_refused_then_recovers(ws, path, True, f"{path}: must be a folder, not a file")


async def test_reconcile_commits_hidden_files_in_workers_and_other_names(ws):
    for rel in ("workers/.gitkeep", "notes/workers", "contexts/company/docs/context.yml/x.md"):
        write(ws, rel, "x\n")
    result = await sync.reconcile(ws, None)
    assert result.committed == ["contexts/company/docs/context.yml/x.md", "notes/workers",
                                "workers/.gitkeep"], result.invalid

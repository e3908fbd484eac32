"""services.assets against a real workspace repository: the rules of versions and rollback,
once for every versioned asset (a worker folder, a context pack, the instructions file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.errors import Conflict, InvalidInput, InvalidManifest, NotFound
from floom_git.services import assets, contexts, instructions, workers
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace, WorkspaceManager
from floom_git.storage.repo import Changeset
from tests.conftest import commit_count, git

ANN = Actor("usr_ann", "ann", "ann@example.com")
RUN_PY = "workers/word-count/run.py"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    manager = WorkspaceManager(Settings(data_dir=tmp_path / "data", watch=False))
    manager.open_all()
    return manager.create_sync("default")


async def commit(ws: Workspace, changes: dict[str, bytes | None], message: str) -> str:
    result = await ws.writer.write(lambda repo: Changeset(dict(changes), message), ANN.signature)
    assert result.sha is not None
    return result.sha


def head(ws: Workspace) -> str:
    return git(ws.path, "rev-parse", "HEAD").strip()


def assert_clean(ws: Workspace) -> None:
    assert git(ws.path, "status", "--porcelain") == ""
    git(ws.path, "fsck", "--strict")


async def test_versions_page_through_the_asset_history_only(ws):
    asset = workers.asset(ws, "word-count")
    made = [await commit(ws, {RUN_PY: f"print({i})\n".encode()}, f"edit {i}") for i in range(5)]
    await commit(ws, {"workspace.md": b"# elsewhere\n"}, "not the worker")
    everything = await assets.versions(ws, asset, 100, 0)
    assert [v.message for v in everything[:5]] == [f"edit {i}" for i in reversed(range(5))]
    assert {v.asset_type for v in everything} == {"worker"}
    assert "not the worker" not in [v.message for v in everything]
    page = await assets.versions(ws, asset, 2, 1)
    assert [v.sha for v in page] == [made[3][:7], made[2][:7]]
    assert await assets.versions(ws, asset, 10, len(everything)) == []  # past the end: empty


async def test_unknown_and_malformed_assets(ws):
    with pytest.raises(NotFound, match="Worker not found"):
        await assets.versions(ws, workers.asset(ws, "never-was"), 10, 0)
    for bad in ("../workspace.md", ":(top)", "-x"):  # never reaches git as a pathspec
        with pytest.raises(NotFound, match="Worker not found"):
            await assets.versions(ws, workers.asset(ws, bad), 10, 0)
        with pytest.raises(NotFound):
            await assets.version_files(ws, workers.asset(ws, bad), "HEAD")
        with pytest.raises(InvalidInput, match="worker id"):
            await assets.rollback(ws, ANN, workers.asset(ws, bad), head(ws))
    # The instructions file always exists: no history yet is an empty page, not a 404.
    assert len(await assets.versions(ws, instructions.asset(), 10, 0)) >= 1


async def test_rollback_to_a_sha_outside_the_asset_history_commits_nothing(ws):
    other = await commit(ws, {"workspace.md": b"# elsewhere\n"}, "not the worker")
    git(ws.path, "branch", "side")
    git(ws.path, "-c", "user.name=x", "-c", "user.email=x@example.com", "commit", "--allow-empty",
        "-q", "-m", "off main")  # then move main back
    off_main = head(ws)
    git(ws.path, "reset", "-q", "--hard", "side")
    before = commit_count(ws.path)
    for sha in (other, other[:7], off_main, "deadbeef", "zzzz", "HEAD~1", "0" * 40):
        with pytest.raises(NotFound):
            await assets.rollback(ws, ANN, workers.asset(ws, "word-count"), sha)
        with pytest.raises(NotFound):
            await assets.version_files(ws, workers.asset(ws, "word-count"), sha)
    assert commit_count(ws.path) == before
    assert_clean(ws)


async def test_rollback_brings_a_deleted_asset_back(ws):
    created = git(ws.path, "log", "-1", "--format=%H", "--", "workers/word-count").strip()
    files = (ws.path / "workers/word-count").glob("**/*")
    original = {p.relative_to(ws.path).as_posix(): p.read_bytes() for p in files if p.is_file()}
    deleted = await workers.delete(ws, ANN, "word-count")
    assert ws.workers.get("word-count") is None
    history = await workers.versions(ws, "word-count", 50, 0)  # a deleted asset keeps its history
    assert history[0].message == "worker: delete word-count"
    before = commit_count(ws.path)
    with pytest.raises(Conflict, match="did not exist"):  # its deletion is a version, not content
        await assets.rollback(ws, ANN, workers.asset(ws, "word-count"), deleted.sha or "")
    assert commit_count(ws.path) == before
    await workers.rollback(ws, ANN, "word-count", created[:7])
    assert git(ws.path, "log", "-1", "--format=%s").strip() == \
        f"rollback: restore word-count to {created[:7]}"
    files = (ws.path / "workers/word-count").glob("**/*")
    assert {
        p.relative_to(ws.path).as_posix(): p.read_bytes() for p in files if p.is_file()
    } == original
    assert ws.workers.get("word-count") is not None
    assert_clean(ws)


async def test_rollback_to_an_invalid_worker_is_refused_and_commits_nothing(ws):
    broken = await commit(ws, {RUN_PY: None}, "break: entry file removed")
    await commit(ws, {RUN_PY: b"print('fixed')\n"}, "fix")
    before, tip = commit_count(ws.path), head(ws)
    listed = [v.sha for v in await workers.versions(ws, "word-count", 10, 0)]
    assert broken[:7] in listed  # it is a version; restoring it is what is refused
    with pytest.raises(InvalidManifest, match="run.py"):
        await workers.rollback(ws, ANN, "word-count", broken[:7])
    assert (commit_count(ws.path), head(ws)) == (before, tip)
    assert (ws.path / RUN_PY).read_text() == "print('fixed')\n"
    assert_clean(ws)


async def test_rollback_to_an_unreadable_context_yml_is_refused(ws):
    meta = "contexts/notes/context.yml"
    await contexts.create(ws, ANN, "notes", contexts.ContextCreate(description="first"))
    bad = await commit(ws, {meta: b"- a list\n- not a mapping\n"}, "break the metadata")
    good = await commit(ws, {meta: b"description: second\n"}, "repair")
    with pytest.raises(InvalidInput, match="expected a mapping"):
        await contexts.rollback(ws, ANN, "notes", bad[:7])
    assert head(ws) == good
    first = (await contexts.versions(ws, "notes", 10, 0))[-1].sha
    restored = await contexts.rollback(ws, ANN, "notes", first)
    assert restored.description == "first"


async def test_a_file_asset_rolls_back_like_a_folder(ws):
    old = await commit(ws, {"workspace.md": b"# one\n"}, "one")
    await commit(ws, {"workspace.md": b"# two\n"}, "two")
    assert (await instructions.version(ws, old[:7])).content == "# one\n"
    short, files = await assets.contents(ws, instructions.asset(), old)
    assert (short, files) == (old[:7], {"workspace.md": b"# one\n"})
    doc = await instructions.rollback(ws, ANN, old[:7])
    assert doc.content == "# one\n" and doc.sha == head(ws)[:7]
    assert git(ws.path, "log", "-1", "--format=%s").strip() == f"workspace: rollback to {old[:7]}"
    assert_clean(ws)

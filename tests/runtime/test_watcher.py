"""The file watcher against the real server: on-disk edits show at once and are committed after
the quiet period; the server's own writes commit nothing; a checkout storm ends consistent.

Nothing here depends on timing: every wait polls observable state up to a generous deadline.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.http.app import create_app
from floom_git.http.keys import WATCHER
from floom_git.services.workspaces import WorkspaceManager
from tests.conftest import AUTH, SECRET, commit_count, git

DEADLINE = 20.0
RUN_PY = "workers/word-count/run.py"
MANIFEST = "workers/word-count/worker.yml"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        secret=SECRET,
        watch=True,
        sync_quiet_seconds=0.2,
        sync_author_name="Disk Editor",
        sync_author_email="disk@example.com",
    )


@pytest.fixture
async def live(aiohttp_client, settings):
    """A running server whose watcher on workspace `default` is live."""
    client = await aiohttp_client(create_app(settings), headers=AUTH)
    await asyncio.wait_for(watch_of(client, "default").ready.wait(), DEADLINE)
    return client


def watch_of(client, ws_id: str):
    watch = client.server.app[WATCHER].get(ws_id)
    assert watch is not None, f"workspace {ws_id} is not watched"
    return watch


async def until(check: Callable[[], object], what: str, deadline: float = DEADLINE) -> object:
    """Poll `check` (sync or async) until it returns something truthy; fail after `deadline`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def sync_subjects(ws: Path) -> list[str]:
    return [s for s in git(ws, "log", "--format=%s", "main").splitlines() if s.startswith("sync:")]


def synced(client, ws_id: str = "default", subject: str | None = None) -> Callable[[], bool]:
    """True once main's tip is a sync commit (with `subject`) whose sync event was emitted,
    i.e. the sync is complete, working tree and index included."""
    ws = client.server.app[WATCHER].manager.get(ws_id)

    def check() -> bool:
        sha, _, subj = git(ws.path, "log", "-1", "--format=%H %s", "main").strip().partition(" ")
        if subject is not None and subj != subject:
            return False
        events = ws.events.since(0)[0]
        return any(e.type == "sync" and e.data["sha"] == sha[:7] for e in events)

    return check


def assert_consistent(ws: Path) -> None:
    assert git(ws, "--no-optional-locks", "status", "--porcelain") == ""
    git(ws, "fsck", "--strict")


async def worker(client, wid: str) -> dict:
    return await (await client.get(f"/api/workers/{wid}")).json()


async def test_edit_worker_file_on_disk_shows_then_commits(live, ws_path):
    (ws_path / RUN_PY).write_text("print('edited on disk')\n")

    async def shown():
        files = {f["path"]: f["content"] for f in (await worker(live, "word-count"))["files"]}
        return files["run.py"] == "print('edited on disk')\n"

    await until(shown, "the edit in GET /workers/word-count")
    await until(synced(live, subject=f"sync: on-disk edit to {RUN_PY}"), "the sync commit")
    # The start-up reconcile may read the file mid-write; the round after it commits the rest.
    await until(lambda: git(ws_path, "show", f"main:{RUN_PY}") == "print('edited on disk')\n",
                "the whole edit on main")
    assert (
        git(ws_path, "log", "-1", "--format=%an <%ae>").strip() == "Disk Editor <disk@example.com>"
    )
    await until(lambda: git(ws_path, "--no-optional-locks", "status", "--porcelain") == "",
                "a clean working tree")
    assert_consistent(ws_path)
    assert not (ws_path / ".git/floom-watch-probe").exists()


async def test_edit_manifest_invalid_on_disk_shows_error_until_fixed(live, ws_path):
    text = (ws_path / MANIFEST).read_text()
    before = commit_count(ws_path)
    (ws_path / MANIFEST).write_text(text.replace("version: 1.0.0", "version: one"))

    async def errored():
        body = await worker(live, "word-count")
        return body["status"] == "error" and "$.version" in (body["error"] or "")

    await until(errored, "status error with the validation message")
    (ws_path / "workspace.md").write_text("# Marker edit\n")  # committed; the bad manifest not
    await until(synced(live, subject="sync: on-disk edit to workspace.md"), "the marker commit")
    assert commit_count(ws_path) == before + 1

    (ws_path / MANIFEST).write_text(text.replace("version: 1.0.0", "version: 1.2.0"))
    await until(
        synced(live, subject=f"sync: on-disk edit to {MANIFEST}"), "the fixed manifest commit"
    )
    assert (await worker(live, "word-count"))["version"] == "1.2.0"
    assert "version: one" not in git(ws_path, "log", "-p", "main")
    assert_consistent(ws_path)


async def test_api_write_makes_no_sync_commit(live, ws_path):
    resp = await live.post("/api/workers/word-count/pause")
    assert resp.status == 200
    resp = await live.put("/api/contexts/company/files/notes.md", data=b"from the API\n")
    assert resp.status in (200, 201), await resp.text()
    # A later on-disk edit is the marker: once it is committed, every earlier event was handled.
    (ws_path / "workspace.md").write_text("# Marker edit\n")
    await until(synced(live, subject="sync: on-disk edit to workspace.md"), "the marker commit")
    assert sync_subjects(ws_path) == ["sync: on-disk edit to workspace.md"]
    assert git(ws_path, "show", "--format=", "--name-only", "main").split() == ["workspace.md"]
    assert_consistent(ws_path)


async def test_push_makes_no_sync_commit(live, ws_path, tmp_path):
    """A push moves main, then the server updates its working tree: the watcher sees those
    writes and finds nothing that differs from main."""
    url = f"http://floom:{SECRET}@127.0.0.1:{live.server.port}/git/default.git"
    clone = tmp_path / "clone"

    def push() -> None:
        git(tmp_path, "clone", "-q", url, str(clone))
        (clone / RUN_PY).write_text("print('pushed')\n")
        (clone / "contexts/company/pushed.md").write_text("pushed\n")
        git(clone, "add", "-A")
        git(clone, "commit", "-qm", "from a clone")
        git(clone, "push", "-q", "origin", "main")

    await asyncio.to_thread(push)
    assert (ws_path / RUN_PY).read_text() == "print('pushed')\n"
    (ws_path / "workspace.md").write_text("# Marker edit\n")
    await until(synced(live, subject="sync: on-disk edit to workspace.md"), "the marker commit")
    assert sync_subjects(ws_path) == ["sync: on-disk edit to workspace.md"]
    assert git(ws_path, "log", "-2", "--format=%s", "main").splitlines()[1] == "from a clone"
    assert_consistent(ws_path)


async def test_secret_files_on_disk_are_never_committed(live, ws_path):
    (ws_path / "workers/word-count/.env").write_text("API_KEY=secret\n")
    (ws_path / "contexts/company/.env.local").write_text("TOKEN=secret\n")
    (ws_path / "contexts/company/server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (ws_path / "workspace.md").write_text("# Marker edit\n")
    await until(synced(live, subject="sync: on-disk edit to workspace.md"), "the marker commit")
    tracked = git(ws_path, "ls-files").split()
    assert not [p for p in tracked if p.endswith((".env", ".env.local", ".pem"))]
    assert (await worker(live, "word-count"))["status"] == "ready"
    patches = git(ws_path, "log", "-p", "main")
    assert "=secret" not in patches and "PRIVATE KEY" not in patches


async def test_delete_file_on_disk_commits_deletion(live, ws_path):
    (ws_path / "contexts/company/about.md").unlink()
    await until(
        synced(live, subject="sync: on-disk edit to contexts/company/about.md"), "the deletion"
    )
    assert "contexts/company/about.md" not in git(ws_path, "ls-files")
    assert_consistent(ws_path)


async def test_new_workspace_is_watched(live):
    manager = live.server.app[WATCHER].manager
    other = await manager.create("second")
    await until(lambda: live.server.app[WATCHER].get("second"), "a watch on the new workspace")
    await asyncio.wait_for(watch_of(live, "second").ready.wait(), DEADLINE)
    (other.path / "workspace.md").write_text("# Second\n")
    await until(synced(live, "second", "sync: on-disk edit to workspace.md"), "the sync commit")


async def test_deleted_workspace_stops_its_watch_and_a_new_one_is_watched(live):
    manager = live.server.app[WATCHER].manager
    await manager.create("second")
    await until(lambda: live.server.app[WATCHER].get("second"), "a watch on the new workspace")
    first_watch = watch_of(live, "second")
    await manager.delete("second")
    assert live.server.app[WATCHER].get("second") is None
    again = await manager.create("second")
    await until(lambda: live.server.app[WATCHER].get("second") not in (None, first_watch),
                "a fresh watch on the re-created workspace")
    await asyncio.wait_for(watch_of(live, "second").ready.wait(), DEADLINE)
    (again.path / "workspace.md").write_text("# Again\n")
    await until(synced(live, "second", "sync: on-disk edit to workspace.md"), "the sync commit")


# -- what is watched: the working tree's own entries, never .git/ --------------------------------


def main_files(ws: Path) -> set[str]:
    return set(git(ws, "ls-tree", "-r", "--name-only", "main").split())


async def test_git_dir_writes_reach_no_watch(live, ws_path):
    watch = watch_of(live, "default")
    assert ".git" not in watch.folders and "workers" in watch.folders
    before = watch.events
    for i in range(40):  # objects, refs and reflogs: what every commit writes under .git/
        sha = subprocess.run(["git", "-C", str(ws_path), "hash-object", "-w", "--stdin"],
                             input=f"object {i}\n", capture_output=True, text=True,
                             check=True).stdout.strip()
        git(ws_path, "update-ref", f"refs/scratch/s{i % 4}", sha)
    (ws_path / "workspace.md").write_text("# Marker edit\n")
    await until(synced(live, subject="sync: on-disk edit to workspace.md"), "the marker commit")
    assert watch.events - before <= 3  # the marker's own events only


@pytest.mark.parametrize("shape", ["mkdir then write", "deep at once", "many folders", "moved in"])
async def test_new_top_level_folder_written_at_once_is_committed(live, ws_path, tmp_path, shape):
    """A folder that appears at the top level gets its own watch a moment later; what is written
    into it meanwhile is found by walking it once that watch is live."""
    wanted: set[str] = set()

    def make() -> None:
        if shape == "mkdir then write":
            (ws_path / "notes").mkdir()
            (ws_path / "notes/a.md").write_text("a\n")
            wanted.add("notes/a.md")
        elif shape == "deep at once":
            _write(ws_path / "docs/deep/er/b.md", "b\n")
            wanted.add("docs/deep/er/b.md")
        elif shape == "many folders":
            for i in range(12):
                _write(ws_path / f"top{i}/sub/f{i}.md", f"{i}\n")
                wanted.add(f"top{i}/sub/f{i}.md")
        else:
            outside = tmp_path / "outside"
            _write(outside / "kept/c.md", "c\n")
            os.rename(outside, ws_path / "moved")
            wanted.add("moved/kept/c.md")

    make()
    await until(lambda: wanted <= main_files(ws_path), "every new file on main")
    watch = watch_of(live, "default")
    await until(lambda: {p.split("/")[0] for p in wanted} <= set(watch.folders),
                "the new folders watched")
    first = sorted(wanted)[0]
    (ws_path / first).write_text("edited once watched\n")  # an edit, not a walk, finds this
    await until(lambda: git(ws_path, "show", f"main:{first}") == "edited once watched\n",
                "the later edit on main")
    await until(lambda: git(ws_path, "--no-optional-locks", "status", "--porcelain") == "",
                "a clean working tree")
    assert_consistent(ws_path)


async def test_top_level_folder_removed_and_made_again_is_watched(live, ws_path):
    watch = watch_of(live, "default")
    subprocess.run(["rm", "-rf", str(ws_path / "contexts")], check=True)
    await until(lambda: not any(p.startswith("contexts/") for p in main_files(ws_path)),
                "the deletion on main")
    await until(lambda: "contexts" not in watch.folders, "the folder watch without it")
    _write(ws_path / "contexts/again/x.md", "again\n")
    await until(lambda: "contexts/again/x.md" in main_files(ws_path), "the new file on main")
    await until(lambda: "contexts" in watch.folders, "the folder watched again")
    (ws_path / "contexts/again/x.md").write_text("edited\n")
    await until(lambda: git(ws_path, "show", "main:contexts/again/x.md") == "edited\n",
                "the edit on main")
    assert_consistent(ws_path)


async def test_new_and_renamed_top_level_entries_are_committed(live, ws_path):
    (ws_path / "NOTES.md").write_text("at the root\n")
    os.rename(ws_path / "contexts", ws_path / "knowledge")
    await until(lambda: "NOTES.md" in main_files(ws_path)
                and "knowledge/company/about.md" in main_files(ws_path)
                and not any(p.startswith("contexts/") for p in main_files(ws_path)),
                "the root file and the rename on main")
    (ws_path / "knowledge/company/about.md").write_text("renamed, then edited\n")
    await until(lambda: git(ws_path, "show", "main:knowledge/company/about.md")
                == "renamed, then edited\n", "the edit under the new name")
    assert_consistent(ws_path)


def _write(path: Path, text: str, atomic: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if atomic:  # how editors and many scripts save: a temp file renamed over the old one
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


def _storm(root: Path, atomic: bool = False) -> None:
    """~2,000 file changes: modify 700 bulk files, delete 300, add 1,000 in new folders, and
    retitle a worker."""
    for i in range(700):
        _write(root / f"contexts/bulk/d{i % 12:02}/f{i:04}.md", f"storm {i}\n", atomic)
    for i in range(900, 1200):
        (root / f"contexts/bulk/d{i % 12:02}/f{i:04}.md").unlink()
    for i in range(1000):
        _write(root / f"contexts/fresh/n{i % 20:02}/g{i:04}.md", f"new {i}\n", atomic)
    manifest = root / MANIFEST
    _write(
        manifest, manifest.read_text().replace("title: Word count", "title: Storm count"), atomic
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["git checkout", "script"])
async def test_checkout_storm_ends_consistent(aiohttp_client, settings, ws_path, tmp_path, how):
    """Thousands of files change under the watcher at once; main ends holding all of them.

    A checkout is settled by its .git/index.lock, so it ends in very few commits; a script has
    no such marker and may be committed in a few steps (each a real intermediate state).
    """
    settings = settings.replace(sync_quiet_seconds=1.0)
    # Before the server starts: main gets 1,200 bulk files, and branch storm the storm's result.
    WorkspaceManager(settings).create_sync("default")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(ws_path), str(clone))
    for i in range(1200):
        _write(clone / f"contexts/bulk/d{i % 12:02}/f{i:04}.md", f"base {i}\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "base")
    git(clone, "push", "-q", "origin", "HEAD:refs/heads/base")
    git(ws_path, "merge", "-q", "--ff-only", "base")
    git(clone, "checkout", "-qb", "storm")
    _storm(clone)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "storm")
    git(clone, "push", "-q", "origin", "storm")
    storm_tree = git(clone, "rev-parse", "storm^{tree}").strip()

    client = await aiohttp_client(create_app(settings), headers=AUTH)
    await asyncio.wait_for(watch_of(client, "default").ready.wait(), DEADLINE)
    before = commit_count(ws_path)
    if how == "git checkout":
        done = await asyncio.to_thread(
            subprocess.run,
            ["git", "-C", str(ws_path), "checkout", "-q", "storm"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    else:
        await asyncio.to_thread(_storm, ws_path, True)

    landed = synced(client)
    await until(
        lambda: git(ws_path, "rev-parse", "main^{tree}").strip() == storm_tree and landed(),
        "main to hold every file of the storm",
        deadline=3 * DEADLINE,
    )
    made = commit_count(ws_path) - before
    assert 1 <= made <= (3 if how == "git checkout" else 20), f"{made} sync commits"
    assert all(s.startswith("sync: on-disk edit to ") for s in sync_subjects(ws_path))
    assert (await worker(client, "word-count"))["name"] == "Storm count"
    assert_consistent(ws_path)
    await client.close()


async def test_reload_commits_pending_valid_edits_and_reports(client, ws_path):
    """POST /workers/reload runs the same reconciliation (the default fixture does not watch)."""
    before = commit_count(ws_path)
    (ws_path / RUN_PY).write_text("print('edited')\n")
    (ws_path / "contexts/company/notes.md").write_text("new notes\n")
    brief = ws_path / "workers/research-brief/worker.yml"
    brief.write_text(brief.read_text().replace("name: research-brief", "name: Bad Name"))
    resp = await client.post("/api/workers/reload")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "success" and body["workers_loaded"] == 2
    assert body["committed"] == ["contexts/company/notes.md", RUN_PY]
    assert any(e.startswith("workers/research-brief/worker.yml:") for e in body["errors"])
    assert commit_count(ws_path) == before + 1
    assert git(ws_path, "log", "-1", "--format=%s").strip() == (
        f"sync: on-disk edit to contexts/company/notes.md, {RUN_PY}"
    )
    assert git(ws_path, "status", "--porcelain").split() == [
        "M",
        "workers/research-brief/worker.yml",
    ]
    resp = await client.post("/api/workers/reload")
    assert (await resp.json())["committed"] == []
    assert commit_count(ws_path) == before + 1

"""WorkspaceRepo and Writer on real repositories in tmp_path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pygit2
import pytest

from floom_git.errors import Conflict
from floom_git.storage import journal
from floom_git.storage.repo import JOURNAL, RUNS, Changeset, WorkspaceRepo, signature
from floom_git.storage.writer import Writer
from tests.conftest import commit_count, git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    return WorkspaceRepo.create(
        tmp_path / "ws", {"a.txt": b"a\n", "dir/b.txt": b"b\n"}, "init", SIG
    )


def test_create_has_one_commit_and_clean_tree(repo):
    assert commit_count(repo.path) == 1
    assert git(repo.path, "status", "--porcelain") == ""
    assert (repo.path / "dir/b.txt").read_bytes() == b"b\n"


def test_commit_updates_worktree_and_index(repo):
    result = repo.commit(Changeset({"dir/c.txt": b"c", "a.txt": None}, "change"), SIG)
    assert result.sha and len(result.short) == 7
    assert not (repo.path / "a.txt").exists()
    assert (repo.path / "dir/c.txt").read_bytes() == b"c"
    assert git(repo.path, "status", "--porcelain") == ""
    assert (
        git(repo.path, "log", "-1", "--format=%an <%ae> %s").strip()
        == "tester <tester@example.com> change"
    )


def test_noop_commit_returns_none(repo):
    assert repo.commit(Changeset({"a.txt": b"a\n"}, "same"), SIG).sha is None
    assert commit_count(repo.path) == 1


def test_delete_folder_then_write_inside_replaces_it(repo):
    repo.commit(Changeset({"dir": None, "dir/new.txt": b"n"}, "replace"), SIG)
    assert sorted(p.name for p in (repo.path / "dir").iterdir()) == ["new.txt"]
    assert git(repo.path, "status", "--porcelain") == ""


def test_commit_refuses_dirty_file(repo):
    (repo.path / "a.txt").write_text("user edit")
    with pytest.raises(Conflict, match="a.txt"):
        repo.commit(Changeset({"a.txt": b"server"}, "x"), SIG)
    assert (repo.path / "a.txt").read_text() == "user edit"
    assert commit_count(repo.path) == 1


def test_executable_bit_survives_update(repo):
    git(repo.path, "update-index", "--chmod=+x", "a.txt")
    git(repo.path, "commit", "-qm", "exec")
    (repo.path / "a.txt").chmod(0o755)
    repo.commit(Changeset({"a.txt": b"new"}, "edit"), SIG)
    assert git(repo.path, "ls-tree", "HEAD", "a.txt").startswith("100755")
    assert git(repo.path, "status", "--porcelain") == ""


def test_recover_finishes_interrupted_worktree_sync(repo):
    # Simulate a crash after the branch moved but before the working tree was written.
    head = repo.tip()
    blob = repo.repo.create_blob(b"committed")
    tb = repo.repo.TreeBuilder(head.tree)
    tb.insert("a.txt", blob, pygit2.enums.FileMode.BLOB)
    repo.repo.create_commit("refs/heads/main", SIG, SIG, "crash", tb.write(), [head.id])
    (Path(repo.repo.path) / JOURNAL).write_text(json.dumps({"files": ["a.txt"]}))
    assert git(repo.path, "status", "--porcelain") != ""
    reopened = WorkspaceRepo(repo.path)
    assert reopened.recover() == ["a.txt"]
    assert (repo.path / "a.txt").read_bytes() == b"committed"
    assert git(repo.path, "status", "--porcelain") == ""


def test_resolve_prefix_and_unknown(repo):
    sha = str(repo.tip().id)
    assert repo.resolve(sha[:7]).id == repo.tip().id
    from floom_git.errors import NotFound

    for bad in ("zz", "123", "g" * 7, "0" * 40):
        with pytest.raises(NotFound):
            repo.resolve(bad)


async def test_concurrent_writers_lose_nothing(repo):
    writer = Writer(repo)
    n = 40

    async def write(i: int) -> str | None:
        res = await writer.write(
            lambda r: Changeset({f"files/f{i}.txt": str(i).encode()}, f"w {i}"), SIG
        )
        return res.sha

    shas = await asyncio.gather(*(write(i) for i in range(n)))
    assert all(shas)
    assert commit_count(repo.path) == n + 1
    assert sorted(p.name for p in (repo.path / "files").iterdir()) == sorted(
        f"f{i}.txt" for i in range(n)
    )
    assert git(repo.path, "status", "--porcelain") == ""
    git(repo.path, "fsck", "--strict")


def test_cas_conflict_when_branch_moves_underneath(repo):
    other = pygit2.Repository(str(repo.path))
    head = other.head.peel(pygit2.Commit)
    moved = other.create_commit("refs/heads/main", SIG, SIG, "elsewhere", head.tree_id, [head.id])
    assert moved
    # repo computed its parent before; a commit built on the old tip must not drop `moved`.
    writer = Writer(repo)
    res = asyncio.run(writer.write(lambda r: Changeset({"z.txt": b"z"}, "z"), SIG))
    log = git(repo.path, "log", "--format=%s").split()
    assert res.sha and "elsewhere" in log and "z" in log


def test_from_disk_commit_refuses_a_file_saved_again_since_it_was_read(repo):
    (repo.path / "a.txt").write_text("second")
    with pytest.raises(Conflict, match="a.txt"):
        repo.commit(Changeset({"a.txt": b"first"}, "sync", from_disk=True), SIG)
    assert (repo.path / "a.txt").read_text() == "second"
    assert commit_count(repo.path) == 1


def test_from_disk_commit_never_overwrites_a_later_edit(repo):
    # The sync read "first" from disk; the person saved "second" after the clean check passed
    # (check_worktree=False stands in for that moment).
    (repo.path / "a.txt").write_text("second")
    result = repo.commit(Changeset({"a.txt": b"first"}, "sync", from_disk=True), SIG,
                         check_worktree=False)
    assert result.sha and result.unsynced == ("a.txt",)  # the caller syncs it again
    assert (repo.path / "a.txt").read_text() == "second"
    assert git(repo.path, "show", "HEAD:a.txt") == "first"
    # Index matches HEAD; the newer edit is an ordinary unstaged change for the next sync.
    assert git(repo.path, "status", "--porcelain").strip() == "M a.txt"


def test_from_disk_commit_leaves_clean_status_when_disk_matches(repo):
    (repo.path / "new.txt").write_text("n")
    (repo.path / "a.txt").unlink()
    repo.commit(Changeset({"new.txt": b"n", "a.txt": None}, "sync", from_disk=True), SIG)
    assert git(repo.path, "status", "--porcelain") == ""


def test_upkeep_repacks_when_git_would_and_writes_bloom_commit_graph(repo):
    from floom_git.storage import history

    git(repo.path, "config", "gc.autoPackLimit", "2")  # the commits' own packs are too many
    for i in range(300):
        repo.commit(Changeset({f"many/f{i}.txt": str(i).encode()}, f"c{i}"), SIG)
    assert len(list((Path(repo.repo.path) / "objects/pack").glob("*.pack"))) > 2
    history.upkeep(repo.path)
    assert len(list((Path(repo.repo.path) / "objects/pack").glob("*.pack"))) == 1
    graphs = Path(repo.repo.path) / "objects/info"
    assert list(graphs.glob("commit-graph*")) or list(graphs.glob("commit-graphs/*"))
    git(repo.path, "fsck", "--strict")
    assert git(repo.path, "status", "--porcelain") == ""


def test_upkeep_starts_git_gc_only_when_git_would_find_work(repo):
    from floom_git.storage import history

    def packs() -> set[str]:
        return {p.name for p in (Path(repo.repo.path) / "objects/pack").glob("*.pack")}

    for i in range(40):
        repo.commit(Changeset({f"few/f{i}.txt": str(i).encode()}, f"c{i}"), SIG)
    assert not history.gc_due(repo.path)  # git --auto would find nothing either
    before = packs()
    git(repo.path, "gc", "--auto", "--quiet")
    assert packs() == before
    git(repo.path, "config", "gc.auto", "1")  # one loose object in objects/17 is too many
    (Path(repo.repo.path) / "objects/17").mkdir(exist_ok=True)
    (Path(repo.repo.path) / "objects/17" / ("0" * 38)).write_bytes(b"")
    (Path(repo.repo.path) / "objects/17" / ("1" * 38)).write_bytes(b"")
    assert history.gc_due(repo.path)
    git(repo.path, "config", "gc.auto", "0")  # switched off
    assert not history.gc_due(repo.path)
    git(repo.path, "config", "gc.auto", "6700")
    git(repo.path, "config", "gc.autoPackLimit", str(len(packs()) + 1))
    for name in ("a", "b"):
        (Path(repo.repo.path) / f"objects/pack/pack-{name * 40}.pack").write_bytes(b"")
    assert history.gc_due(repo.path)  # one pack more than allowed
    (Path(repo.repo.path) / f"objects/pack/pack-{'b' * 40}.keep").write_bytes(b"")
    assert not history.gc_due(repo.path)  # a kept pack does not count
    git(repo.path, "config", "gc.auto", "many")
    assert history.gc_due(repo.path)  # unreadable: git decides


# -- commits grouped into one working-tree sync (the writer's batches) ----------------------------


def test_grouped_commits_sync_worktree_and_index_once_at_the_end(repo):
    with repo.grouped() as group:
        first = repo.commit(Changeset({"dir/c.txt": b"c1"}, "one"), SIG)
        second = repo.commit(Changeset({"dir/c.txt": b"c2", "a.txt": None}, "two"), SIG)
        assert not (repo.path / "dir/c.txt").exists()  # not synced yet ...
        assert json.loads((repo.path / ".git" / JOURNAL).read_text())["from"] != first.sha
    assert (repo.path / "dir/c.txt").read_bytes() == b"c2"  # ... and now, once
    assert not (repo.path / "a.txt").exists()
    assert not journal.pending(repo.path / ".git")
    assert group.kept == set() and second.unsynced == ()
    assert commit_count(repo.path) == 3
    assert git(repo.path, "status", "--porcelain") == ""


def test_grouped_commit_refuses_file_edited_since_the_last_sync(repo):
    with repo.grouped() as group:
        repo.commit(Changeset({"a.txt": b"server 1"}, "one"), SIG)
        (repo.path / "a.txt").write_text("person")  # the disk still held the last synced a.txt
        with pytest.raises(Conflict, match="a.txt"):
            repo.commit(Changeset({"a.txt": b"server 2"}, "two"), SIG)
    assert (repo.path / "a.txt").read_text() == "person"  # never overwritten
    assert group.kept == {"a.txt"}
    assert git(repo.path, "show", "main:a.txt") == "server 1"
    assert git(repo.path, "status", "--porcelain").split() == ["M", "a.txt"]


def test_grouped_commits_turn_a_folder_into_a_file_and_back(repo):
    with repo.grouped():
        repo.commit(Changeset({"dir": None}, "drop the folder"), SIG)
        repo.commit(Changeset({"dir": b"now a file\n"}, "a file"), SIG)
    assert (repo.path / "dir").read_bytes() == b"now a file\n"
    with repo.grouped():
        repo.commit(Changeset({"dir": None}, "drop the file"), SIG)
        repo.commit(Changeset({"dir/x/y.txt": b"deep\n"}, "a folder again"), SIG)
    assert (repo.path / "dir/x/y.txt").read_bytes() == b"deep\n"
    assert git(repo.path, "status", "--porcelain") == ""


def test_grouped_commits_cut_short_before_landing_leave_main_as_it_was(repo):
    """A process killed inside a group before it landed: no branch names its commits (none was
    acknowledged), and the next process finds nothing to redo."""
    before = commit_count(repo.path)
    with repo.grouped():
        repo.commit(Changeset({"dir/c.txt": b"c"}, "one"), SIG)
        repo.commit(Changeset({"a.txt": b"a2\n"}, "two"), SIG)
        other = WorkspaceRepo(repo.path)  # the next process
        assert other.recover() == []
        assert commit_count(repo.path) == before
        assert git(repo.path, "status", "--porcelain") == ""
        git(repo.path, "fsck", "--strict")
    assert commit_count(repo.path) == before + 2  # this process did land them


def test_grouped_commits_cut_short_after_landing_are_synced_by_recovery(repo):
    """A process killed after its group's branch moved, before the sync: the journal names the
    commit the disk holds, so the next process brings the working tree to main."""
    with repo.grouped():
        repo.commit(Changeset({"dir/c.txt": b"c"}, "one"), SIG)
        repo.commit(Changeset({"a.txt": b"a2\n"}, "two"), SIG)
        repo._land()  # the pack written and main moved; the sync is what the kill cut off
        other = WorkspaceRepo(repo.path)  # the next process, before this one synced
        assert sorted(other.recover()) == ["a.txt", "dir/c.txt"]
        assert git(repo.path, "status", "--porcelain") == ""
    assert (repo.path / "dir/c.txt").read_bytes() == b"c"
    assert git(repo.path, "status", "--porcelain") == ""


def test_grouped_sync_of_disk_edits_sees_the_group_synced_first(repo):
    with repo.grouped():
        repo.commit(Changeset({"dir/c.txt": b"c"}, "api"), SIG)
        (repo.path / "a.txt").write_text("saved on disk\n")
        result = repo.commit(Changeset({"a.txt": b"saved on disk\n"}, "sync", from_disk=True), SIG)
        assert result.sha and result.unsynced == ()
        assert (repo.path / "dir/c.txt").read_bytes() == b"c"  # synced before the disk commit
    assert git(repo.path, "status", "--porcelain") == ""


def _objects_unwritable(repo: WorkspaceRepo) -> None:
    """Every new object fails to be written, as on a full disk: objects packed and the pack
    moved to an alternate object store, and objects/pack and each fan-out folder replaced by a
    file (root ignores permissions, so modes would not do)."""
    git(repo.path, "repack", "-adq")
    objects = repo.path / ".git" / "objects"
    store = repo.path.parent / "alternate-objects"
    store.mkdir()
    (objects / "pack").rename(store / "pack")
    (objects / "info" / "alternates").write_text(f"{store}\n")
    (objects / "pack").write_bytes(b"")
    for i in range(256):
        fan = objects / f"{i:02x}"
        if fan.is_dir():
            fan.rmdir()  # empty once everything is packed
        fan.write_bytes(b"")


def test_commit_failing_to_write_is_not_reported_as_branch_moved(repo):
    first = repo.tip()
    repo.commit(Changeset({"a.txt": b"two\n"}, "two"), SIG)
    tip = str(repo.tip().id)
    _objects_unwritable(repo)
    # The tree of the change exists already (it is the first commit's): only the commit
    # object is new, and writing it fails.
    with pytest.raises(OSError) as caught:
        repo.commit(Changeset({"a.txt": b"a\n"}, "back"), SIG)
    assert not isinstance(caught.value, Conflict)
    assert str(repo.tip().id) == tip and first is not None
    assert not journal.pending(repo.path / ".git")


def test_writer_does_not_retry_or_answer_409_for_a_failed_write(repo):
    repo.commit(Changeset({"a.txt": b"two\n"}, "two"), SIG)
    _objects_unwritable(repo)
    calls = []

    def build(r: WorkspaceRepo) -> Changeset:
        calls.append(1)
        return Changeset({"a.txt": b"a\n"}, "back")

    with pytest.raises(OSError) as caught:
        asyncio.run(Writer(repo).write(build, SIG))
    assert not isinstance(caught.value, Conflict) and len(calls) == 1


@pytest.mark.parametrize("runs_first", [False, True])
def test_grouped_commit_repairing_a_journal_left_by_a_failure_keeps_its_objects(repo, runs_first):
    """The first commit on main of a group repairs a sync journal an earlier failure left
    (recover), which lands what the group holds so far: the commit being made still lands
    whole."""
    main = str(repo.tip().id)
    with repo.grouped():
        if runs_first:
            repo.commit(Changeset({"runs/r.json": b"{}"}, "run"), SIG, ref=RUNS)
        journal.write(Path(repo.repo.path), {"from": main, "files": [], "index_only": False})
        result = repo.commit(Changeset({"after.txt": b"after\n"}, "after a failure"), SIG)
    assert git(repo.path, "show", "main:after.txt") == "after\n"
    assert git(repo.path, "rev-parse", "main").strip() == result.sha
    assert (repo.path / "after.txt").read_text() == "after\n"
    git(repo.path, "fsck", "--strict")
    assert git(repo.path, "status", "--porcelain") == ""


def test_a_group_whose_first_landing_failed_still_syncs_what_lands_later(repo):
    """A person's git holds main's lock when an on-disk edit makes the group land early: those
    commits are lost (their writers are told), and commits made after the lock is let go land
    and reach the disk."""
    lock = Path(repo.repo.path) / "refs" / "heads" / "main.lock"
    before = commit_count(repo.path)
    with repo.grouped() as group:
        lost = repo.commit(Changeset({"lost.txt": b"lost\n"}, "lost"), SIG)
        lock.write_text("held by a person's git\n")
        (repo.path / "a.txt").write_text("disk\n")
        with pytest.raises(OSError):
            repo.commit(Changeset({"a.txt": b"disk\n"}, "sync", from_disk=True), SIG)
        lock.unlink()
        later = repo.commit(Changeset({"later.txt": b"later\n"}, "later"), SIG)
    assert lost.sha in group.lost and later.sha not in group.lost
    assert isinstance(group.failed["refs/heads/main"], OSError)
    assert git(repo.path, "rev-parse", "main").strip() == later.sha
    assert commit_count(repo.path) == before + 1
    assert (repo.path / "later.txt").read_text() == "later\n"
    assert not (repo.path / "lost.txt").exists()
    assert git(repo.path, "status", "--porcelain").split() == ["M", "a.txt"]  # still on disk
    git(repo.path, "fsck", "--strict")

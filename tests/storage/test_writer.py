"""Group commit in the workspace Writer, on real repositories in tmp_path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.storage.repo import MAIN, RUNS, Changeset, CommitResult, WorkspaceRepo, signature
from floom_git.storage.writer import Writer
from tests.conftest import commit_count, git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    return WorkspaceRepo.create(tmp_path / "ws", {"a.txt": b"a\n"}, "init", SIG)


def put(path: str, data: bytes, message: str | None = None):
    return lambda repo: Changeset({path: data}, message or f"put {path}")


async def test_write_concurrent_writers_get_one_commit_each_in_few_batches(repo):
    writer = Writer(repo)
    n = 30
    results = await asyncio.gather(
        *(
            writer.write(put(f"notes/n{i}.txt", f"{i}\n".encode(), f"note {i}"), SIG)
            for i in range(n)
        )
    )
    assert writer.batches < n  # they queued up and were committed together
    assert commit_count(repo.path) == n + 1
    log = git(repo.path, "log", "--format=%s").splitlines()
    assert sorted(log[:n]) == sorted(f"note {i}" for i in range(n))
    for i, result in enumerate(results):
        commit = repo.repo[result.sha]
        assert commit.tree[f"notes/n{i}.txt"].data == f"{i}\n".encode()
        assert commit.message == f"note {i}"
        assert repo.is_ancestor(commit)
    assert len({r.sha for r in results}) == n
    assert git(repo.path, "status", "--porcelain") == ""
    git(repo.path, "fsck", "--strict")


@pytest.mark.parametrize(
    "error", [InvalidInput("bad field"), Conflict("exists"), NotFound("gone"), RuntimeError("boom")]
)
async def test_write_failing_build_fails_only_its_own_write(repo, error):
    writer = Writer(repo)

    def failing(r: WorkspaceRepo) -> Changeset:
        raise error

    builds = [put(f"f/{i}.txt", b"x") for i in range(10)]
    builds[4] = failing
    outcomes = await asyncio.gather(*(writer.write(b, SIG) for b in builds), return_exceptions=True)
    assert outcomes[4] is error
    assert all(isinstance(o, CommitResult) and o.sha for i, o in enumerate(outcomes) if i != 4)
    assert writer.batches == 1
    assert commit_count(repo.path) == 10  # init + 9
    assert not (repo.path / "f/4.txt").exists()
    assert git(repo.path, "status", "--porcelain") == ""


async def test_write_noop_in_batch_makes_no_commit(repo):
    writer = Writer(repo)
    outcomes = await asyncio.gather(
        writer.write(put("a.txt", b"a\n"), SIG),  # same content as HEAD
        writer.write(lambda r: None, SIG),  # nothing to do
        writer.write(put("b.txt", b"b"), SIG),
    )
    assert [o.sha is None for o in outcomes] == [True, True, False]
    assert commit_count(repo.path) == 2


async def test_write_same_path_in_batch_each_commit_holds_its_version(repo):
    writer = Writer(repo)
    results = await asyncio.gather(
        *(writer.write(put("a.txt", f"v{i}".encode()), SIG) for i in range(5))
    )
    for i, result in enumerate(results):
        assert repo.repo[result.sha].tree["a.txt"].data == f"v{i}".encode()
    assert (repo.path / "a.txt").read_bytes() == b"v4"
    assert git(repo.path, "status", "--porcelain") == ""


async def test_write_build_sees_earlier_commits_of_its_batch(repo):
    writer = Writer(repo)

    def create_once(r: WorkspaceRepo) -> Changeset:
        if r.entry(r.tip(), "only.txt") is not None:
            raise Conflict("only.txt already exists")
        return Changeset({"only.txt": b"1"}, "create only")

    outcomes = await asyncio.gather(
        writer.write(create_once, SIG), writer.write(create_once, SIG), return_exceptions=True
    )
    assert isinstance(outcomes[0], CommitResult) and isinstance(outcomes[1], Conflict)


async def test_write_listeners_see_every_commit_in_order(repo):
    writer = Writer(repo)
    seen: list[tuple[str, tuple[str, ...], str]] = []
    released: list[int] = []
    writer.listeners.append(lambda result, ref: seen.append((result.sha, result.files, ref)))
    writer.listeners.append(lambda result, ref: 1 / 0)  # a broken listener harms nobody
    writer.released.append(lambda: released.append(1))
    results = await asyncio.gather(*(writer.write(put(f"l/{i}.txt", b"x"), SIG) for i in range(6)))
    assert [s[0] for s in seen] == [r.sha for r in results]
    assert [s[1] for s in seen] == [(f"l/{i}.txt",) for i in range(6)]
    assert released and writer.commits == 6


async def test_write_queued_behind_locked_section_commit_in_one_batch(repo):
    writer = Writer(repo)
    async with writer.locked():  # e.g. a receive-pack holding the lock
        tasks = [asyncio.create_task(writer.write(put(f"q/{i}.txt", b"q"), SIG)) for i in range(8)]
        await asyncio.sleep(0)
        assert commit_count(repo.path) == 1
    results = await asyncio.gather(*tasks)
    assert writer.batches == 1
    assert all(r.sha for r in results) and commit_count(repo.path) == 9


async def test_write_cancelled_before_its_batch_makes_no_commit(repo):
    writer = Writer(repo)
    async with writer.locked():
        task = asyncio.create_task(writer.write(put("gone.txt", b"g"), SIG))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    result = await writer.write(put("kept.txt", b"k"), SIG)
    assert result.sha and commit_count(repo.path) == 2
    assert not (repo.path / "gone.txt").exists()


async def test_write_batch_mixes_branches(repo):
    writer = Writer(repo)
    outcomes = await asyncio.gather(
        writer.write(put("main.txt", b"m"), SIG),
        writer.write(put("runs/r1.json", b"{}"), SIG, ref=RUNS),
        writer.write(put("main2.txt", b"m"), SIG, ref=MAIN),
    )
    assert all(o.sha for o in outcomes)
    assert git(repo.path, "ls-tree", "-r", "--name-only", "floom/runs").split() == ["runs/r1.json"]
    assert not (repo.path / "runs").exists()  # floom/runs never touches the working tree
    assert commit_count(repo.path) == 3
    assert git(repo.path, "status", "--porcelain") == ""


# -- a batch lands as one group: each branch moved once, a reflog line per commit -------------


async def _one_batch(writer: Writer, *builds) -> list[CommitResult]:
    """Queue the writes while the lock is held, so they are committed as one batch."""
    async with writer.locked():
        pending = [asyncio.ensure_future(writer.write(build, SIG)) for build in builds]
        for _ in range(3):  # each write needs one step of the loop to join the queue
            await asyncio.sleep(0)
    return list(await asyncio.gather(*pending))


def _packs(repo: WorkspaceRepo) -> set[str]:
    return {p.name for p in (Path(repo.repo.path) / "objects" / "pack").glob("pack-*.idx")}


async def test_a_batch_lands_with_a_reflog_line_per_commit_and_no_loose_object(repo):
    writer = Writer(repo)
    before = _packs(repo)
    results = await _one_batch(writer, *(put(f"n/{i}.txt", b"%d\n" % i, f"note {i}")
                                         for i in range(5)))
    assert writer.batches == 1
    assert _packs(repo) - before  # the commits' objects are in packs, none loose
    assert not [p for p in (Path(repo.repo.path) / "objects").glob("??/*") if p.is_file()]
    reflog = git(repo.path, "reflog", "show", "--format=%H %gs", "main").splitlines()
    expected = [f"{r.sha} commit: note {i}" for i, r in enumerate(results)]
    assert reflog[:5] == expected[::-1]
    head_log = git(repo.path, "reflog", "show", "--format=%H", "HEAD").splitlines()
    assert head_log[:5] == [r.sha for r in reversed(results)]
    assert [r.parent for r in results[1:]] == [r.sha for r in results[:-1]]
    assert git(repo.path, "status", "--porcelain") == ""
    git(repo.path, "fsck", "--strict")


async def test_commits_of_a_batch_are_seen_by_its_builds_and_by_nobody_else_before_it_lands(repo):
    writer = Writer(repo)
    tip = str(repo.tip().id)
    seen: list[tuple[str, str]] = []

    def look(r: WorkspaceRepo) -> Changeset:
        mine = str(r.tip().id)  # the writer's thread: the batch's last commit
        elsewhere: list[str] = []
        thread = __import__("threading").Thread(target=lambda: elsewhere.append(str(r.tip().id)))
        thread.start()
        thread.join()
        seen.append((mine, elsewhere[0]))
        return Changeset({"look.txt": b"looked\n"}, "look")

    one, _ = await _one_batch(writer, put("one.txt", b"1\n"), look)
    assert seen == [(one.sha, tip)]  # other threads see main as it is on disk
    assert git(repo.path, "show", "main:one.txt") == "1\n"


async def test_a_branch_moved_by_someone_else_before_the_batch_lands_gets_every_write(repo):
    """A person's commit moves main while a batch is being built: the batch cannot land on the
    tip it was built on, so its writes are built again on the new tip; nothing is lost."""
    writer = Writer(repo)
    other = WorkspaceRepo(repo.path)  # another program's handle on the same repository
    moved = []

    def person_then_write(r: WorkspaceRepo) -> Changeset:
        if not moved:
            parent = other.repo.lookup_reference(MAIN).peel()
            blob = other.repo.create_blob(b"person\n")
            builder = other.repo.TreeBuilder(parent.tree)
            builder.insert("person.txt", blob, 0o100644)
            moved.append(other.repo.create_commit(MAIN, SIG, SIG, "person", builder.write(),
                                                  [parent.id]))
        return Changeset({"two.txt": b"2\n"}, "two")

    one, two = await _one_batch(writer, put("one.txt", b"1\n"), person_then_write)
    log = git(repo.path, "log", "--format=%s", "main").splitlines()
    assert log[:3] == ["two", "put one.txt", "person"]
    assert one.parent == str(moved[0]) and two.parent == one.sha
    for name in ("one.txt", "two.txt", "person.txt"):
        assert git(repo.path, "show", f"main:{name}")
    git(repo.path, "fsck", "--strict")

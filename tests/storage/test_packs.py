"""A commit's objects are stored as one pack that git and libgit2 read, commit objects are byte
for byte what libgit2 writes, small packs are rolled up into few (never a pack with deltas or a
kept one), and what a killed write leaves in objects/pack is removed at start-up."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from floom_git.storage import leftovers, packs
from floom_git.storage.repo import TEMP_PREFIX, Changeset, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    return WorkspaceRepo.create(tmp_path / "ws", {"README.md": b"r\n"}, "init", SIG)


def pack_dir(repo: WorkspaceRepo) -> Path:
    return Path(repo.repo.path) / "objects" / "pack"


def pack_names(repo: WorkspaceRepo) -> set[str]:
    return {p.stem for p in pack_dir(repo).glob("pack-*.idx")}


def loose_objects(repo: WorkspaceRepo) -> list[Path]:
    objects = Path(repo.repo.path) / "objects"
    return [p for p in objects.glob("??/*") if p.is_file()]


def fsck(repo: WorkspaceRepo) -> None:
    subprocess.run(["git", "-C", str(repo.path), "fsck", "--strict", "--no-dangling"],
                   check=True, capture_output=True)


def test_a_commit_is_one_pack_that_git_verifies(repo):
    before = pack_names(repo)
    result = repo.commit(Changeset({"d/e/f.txt": b"deep\n", "g.md": b"g\n"}, "two files"), SIG)
    new = pack_names(repo) - before
    assert len(new) == 1 and loose_objects(repo) == []
    (name,) = new
    listing = git(repo.path, "verify-pack", "-v", str(pack_dir(repo) / f"{name}.idx"))
    kinds = [line.split()[1] for line in listing.splitlines() if len(line.split()) > 2
             and len(line.split()[0]) == 40]
    # the commit, its root tree, d, d/e, and two blobs; no deltas
    assert sorted(kinds) == ["blob", "blob", "commit", "tree", "tree", "tree"]
    assert "chain length" not in listing
    assert git(repo.path, "cat-file", "-p", "main:d/e/f.txt") == "deep\n"
    assert git(repo.path, "rev-parse", "main").strip() == result.sha
    fsck(repo)


def test_a_big_tree_is_stored_uncompressed_and_git_reads_it(repo):
    files = {f"big/file-{i:04d}.md": b"# note %d\n\nsome prose to compress, " % i * 20
             for i in range(200)}
    repo.commit(Changeset(files, "a folder of 200 files"), SIG)
    big = git(repo.path, "rev-parse", "main:big").strip()
    listings = (git(repo.path, "verify-pack", "-v", str(idx))
                for idx in pack_dir(repo).glob("pack-*.idx"))
    listing = next(out for out in listings if big in out)  # the commit's pack
    rows = {cols[0]: cols for cols in (line.split() for line in listing.splitlines())
            if len(cols) >= 5 and len(cols[0]) == 40}
    size, in_pack = int(rows[big][2]), int(rows[big][3])
    assert size > packs.STORED_TREE and in_pack > size  # stored: its bytes and zlib's framing
    blob = git(repo.path, "rev-parse", "main:big/file-0007.md").strip()
    assert int(rows[blob][3]) < int(rows[blob][2])  # a file's bytes are still compressed
    assert len(git(repo.path, "ls-tree", "main:big").splitlines()) == 200
    assert git(repo.path, "cat-file", "-p", "main:big/file-0007.md").startswith("# note 7\n")
    assert repo.read_blob(repo.tip(), "big/file-0199.md") == files["big/file-0199.md"]
    fsck(repo)


@pytest.mark.parametrize("name,email,offset", [
    ("tester", "tester@example.com", 0),
    ("Zoë Ångström", "zoe@例え.jp", 330),
    ("West", "w@x", -480),
    ("Half", "h@x", -30),
])
def test_commit_objects_are_what_libgit2_writes(tmp_path, name, email, offset):
    repo = pygit2.init_repository(str(tmp_path / "r"))
    author = pygit2.Signature(name, email, 1_700_000_000, offset)
    committer = pygit2.Signature("c", "c@x", 1_700_000_100, 60)
    tree = repo.TreeBuilder().write()
    first = repo.create_commit(None, author, committer, "one\n\nbody\n", tree, [])
    for message, parents in (("line", [first]), ("", [first]), ("merge\n", [first, first]),
                             ("ünïcode\r\nand tabs\t\n", [])):
        expected = repo.create_commit(None, author, committer, message, tree, parents)
        data = packs.commit_data(tree, parents, author, committer, message)
        assert packs.object_id(1, data) == expected.raw
        assert repo[expected].read_raw() == data


def test_small_packs_are_rolled_up_and_every_object_stays_readable(repo):
    commits = []
    for i in range(200):
        result = repo.commit(Changeset({f"many/f{i}.txt": b"%d\n" % i}, f"c{i}"), SIG)
        commits.append(result.sha)
    # one pack per commit would be 200: tiers of TIER_FULL keep fewer than TIER_FULL per tier
    assert len(pack_names(repo)) < 2 * packs.TIER_FULL
    assert loose_objects(repo) == []
    fsck(repo)
    assert git(repo.path, "rev-list", "--count", "main").strip() == "201"
    assert git(repo.path, "status", "--porcelain") == ""
    for sha in commits[::37]:  # the server's own handle reads what was rolled
        assert isinstance(repo.repo[sha], pygit2.Commit)
    assert repo.read_blob(repo.tip(), "many/f5.txt") == b"5\n"


def test_a_pack_with_deltas_or_a_keep_file_is_never_rolled(repo):
    for i in range(3):
        repo.commit(Changeset({"big.txt": b"line\n" * 500 + b"%d\n" % i}, f"b{i}"), SIG)
    git(repo.path, "repack", "-adfq")  # git's own pack, with deltas
    (gits,) = pack_names(repo)
    assert "chain length" in git(repo.path, "verify-pack", "-v",
                                 str(pack_dir(repo) / f"{gits}.idx"))
    for i in range(3 * packs.TIER_FULL):
        repo.commit(Changeset({f"f{i}.txt": b"%d\n" % i}, f"c{i}"), SIG)
    kept = next(n for n in pack_names(repo) if n != gits)
    (pack_dir(repo) / f"{kept}.keep").write_bytes(b"")
    for i in range(3 * packs.TIER_FULL):
        repo.commit(Changeset({f"g{i}.txt": b"%d\n" % i}, f"d{i}"), SIG)
    assert {gits, kept} <= pack_names(repo)
    fsck(repo)


def test_roll_up_skips_what_is_not_a_whole_pack(tmp_path):
    git_dir = Path(pygit2.init_repository(str(tmp_path / "r")).path)
    folder = git_dir / "objects" / "pack"
    names = []
    for i in range(packs.TIER_FULL):
        objects = packs.Objects()
        objects.add(3, b"blob %d\n" % i)
        names.append(objects.write(git_dir))
    broken = folder / f"{names[0]}.pack"
    broken.write_bytes(broken.read_bytes()[:-30])  # cut short: its index no longer matches
    assert not packs.roll_up(git_dir)  # three whole packs are not a full tier
    assert {p.stem for p in folder.glob("*.idx")} == set(names)


def test_what_a_killed_pack_write_leaves_is_removed_at_start_up(repo):
    folder = pack_dir(repo)
    orphan = folder / ("pack-" + "a" * 40 + ".pack")  # killed before its index was named
    orphan.write_bytes(b"PACK")
    temp = folder / f"{TEMP_PREFIX}new-1-2"  # the named way, where O_TMPFILE is missing
    temp.write_bytes(b"PACK")
    gits = folder / "tmp_pack_XyZ"
    gits.write_bytes(b"")
    whole = pack_names(repo)
    removed = leftovers.clear(Path(repo.repo.path), TEMP_PREFIX)
    assert {Path(p).name for p in removed} >= {orphan.name, temp.name, gits.name}
    assert not orphan.exists() and not temp.exists() and not gits.exists()
    assert pack_names(repo) == whole
    fsck(repo)


def test_a_pack_is_named_even_without_unnamed_files(repo, monkeypatch):
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    repo.commit(Changeset({"x.txt": b"x\n"}, "named files"), SIG)
    assert not list(pack_dir(repo).glob(TEMP_PREFIX + "*"))
    assert git(repo.path, "show", "main:x.txt") == "x\n"
    fsck(repo)


def test_upkeep_has_git_roll_big_undeltified_packs_into_one_with_deltas(repo, monkeypatch):
    from floom_git.storage import history

    monkeypatch.setattr(packs, "ROLL_MAX", 4096)  # every commit's pack is already "big"
    shas = []
    base = random.Random(5).randbytes(6000).hex().encode()  # compresses to more than ROLL_MAX
    for i in range(12):
        body = base + b"\n%d\n" % i
        shas.append(repo.commit(Changeset({"long.txt": body}, f"c{i}"), SIG).sha)
    big = packs.big(Path(repo.repo.path))
    assert big >= 12
    size = sum(p.stat().st_size for p in pack_dir(repo).glob("*.pack"))
    history.upkeep(repo.path)
    assert packs.big(Path(repo.repo.path)) < big
    assert sum(p.stat().st_size for p in pack_dir(repo).glob("*.pack")) < size / 2  # deltas
    fsck(repo)
    assert git(repo.path, "status", "--porcelain") == ""
    for sha in shas:  # the server's handle finds what git moved
        assert repo.read_blob(repo.repo[sha], "long.txt").endswith(b"\n")
    repo.commit(Changeset({"after.txt": b"after\n"}, "after"), SIG)
    fsck(repo)


def test_the_repository_reads_objects_only_through_libgit2s_own_backends(repo):
    """pygit2 calls a Python odb backend without taking the GIL (unsafe wherever pygit2 has
    released it; an executor hung at its first fetch): objects reach libgit2 only as files."""
    assert len(list(repo.repo.odb.backends)) == 2  # loose objects and packs
    repo.commit(Changeset({"x.txt": b"x\n"}, "x"), SIG)
    repo.reopen()
    assert len(list(repo.repo.odb.backends)) == 2


def test_packs_another_program_adds_are_rolled_up_within_relist_calls(tmp_path):
    git_dir = Path(pygit2.init_repository(str(tmp_path / "r")).path)
    folder = git_dir / "objects" / "pack"
    assert not packs.roll_up(git_dir)  # counted: nothing to roll
    other = Path(pygit2.init_repository(str(tmp_path / "other")).path)
    for i in range(packs.TIER_FULL):  # written by "another program": not counted here
        objects = packs.Objects()
        objects.add(3, b"blob %d\n" % i)
        name = objects.write(other)
        for ext in (".pack", ".idx"):
            shutil.copy(other / "objects" / "pack" / f"{name}{ext}", folder)
    assert len(list(folder.glob("*.idx"))) == packs.TIER_FULL
    assert any(packs.roll_up(git_dir) for _ in range(packs.RELIST + 1))
    assert len(list(folder.glob("*.idx"))) == 1
    repo = pygit2.Repository(str(git_dir))
    assert all(packs.object_id(3, b"blob %d\n" % i).hex() in repo for i in range(packs.TIER_FULL))


def test_own_packs_fill_a_tier_and_are_rolled_up_at_once(tmp_path):
    git_dir = Path(pygit2.init_repository(str(tmp_path / "r")).path)
    assert not packs.roll_up(git_dir)
    for i in range(packs.TIER_FULL - 1):
        objects = packs.Objects()
        objects.add(3, b"blob %d\n" % i)
        objects.write(git_dir)
        assert not packs.roll_up(git_dir)
    objects = packs.Objects()
    objects.add(3, b"last blob\n")
    objects.write(git_dir)
    assert packs.roll_up(git_dir)  # the counts say the tier is full: listed and rolled now


def test_a_roll_up_of_packs_written_here_copies_what_it_remembers_byte_for_byte(tmp_path):
    """A roll-up takes the entries of packs this process wrote from memory (no read back); the
    pack it makes is the very one a roll-up reading them from disk makes."""
    made = {}
    for how in ("remembered", "read back"):
        git_dir = Path(pygit2.init_repository(str(tmp_path / how)).path)
        for i in range(packs.TIER_FULL):
            objects = packs.Objects()
            objects.add(3, b"blob %d\n" % i)
            objects.add(2, b"100644 f\0" + packs.object_id(3, b"blob %d\n" % i))
            name = objects.write(git_dir)
            if how == "read back":
                assert packs._WRITTEN.take(f"{git_dir / 'objects' / 'pack'}/{name}") is not None
        assert packs.roll_up(git_dir)
        (made[how],) = [p.name for p in (git_dir / "objects" / "pack").glob("*.pack")]
        assert "error" not in git(git_dir, "verify-pack", "-v", *[
            str(p) for p in (git_dir / "objects" / "pack").glob("*.idx")])
    assert made["remembered"] == made["read back"]


def test_remembered_packs_stay_within_their_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(packs, "WRITTEN_BYTES", 3000)
    git_dir = Path(pygit2.init_repository(str(tmp_path / "r")).path)
    folder = git_dir / "objects" / "pack"
    names = []
    for _ in range(6):
        objects = packs.Objects()
        objects.add(3, os.urandom(900))  # about 920 bytes a pack: three fit
        names.append(objects.write(git_dir))
    kept = [n for n in names if packs._WRITTEN.take(f"{folder}/{n}") is not None]
    assert kept == names[-3:]  # the newest, which the next roll-up takes

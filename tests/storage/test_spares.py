"""Spare inodes (storage/spares.py): a replaced branch or index, or a rolled-up pack, lends its
inode to the next lock file or pack instead of being freed, but only when nobody else has it
open or mapped; and a libgit2 handle let go of is freed at once (storage/handle.py), so it does
not keep removed packs mapped."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import pytest

from floom_git.storage import lockfile, packs, spares
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from tests.conftest import git

SIG = signature("tester", "tester@example.com")

# Maps the file named on the command line, closes it (as git does with the index), says so,
# and when told, prints what the mapping holds.
READER = """
import mmap, sys
with open(sys.argv[1], "rb") as f:
    view = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print("mapped", flush=True)
sys.stdin.readline()
sys.stdout.write(view[:].decode())
"""


def spare_inodes(git_dir: Path) -> set[int]:
    folder = git_dir / spares.DIR
    return {p.stat().st_ino for p in folder.iterdir()} if folder.is_dir() else set()


def test_a_replaced_file_lends_its_inode_to_the_next_replacement(tmp_path: Path) -> None:
    pool = spares.Spares(tmp_path)
    target = tmp_path / "index"
    target.write_bytes(b"version 0\n")
    inodes = [target.stat().st_ino]
    for i in range(1, 8):
        with lockfile.replacing(target, spares=pool) as fd:
            lockfile.put(fd, b"version %d\n" % i * (50 * i))  # sizes differ: grown and shrunk
        assert target.read_bytes() == b"version %d\n" % i * (50 * i)
        inodes.append(target.stat().st_ino)
    # The first replacement needs a new inode; from then on the two take turns.
    assert len(set(inodes)) == 2 and inodes[2::2] == [inodes[0]] * 3
    assert not (tmp_path / "index.lock").exists()
    assert spare_inodes(tmp_path) == {inodes[-2]}


def test_a_file_another_process_has_mapped_is_never_written_again_until_let_go(
        tmp_path: Path) -> None:
    pool = spares.Spares(tmp_path)
    target = tmp_path / "index"
    target.write_bytes(b"what the reader mapped\n")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(target)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "mapped\n"
        mapped = target.stat().st_ino
        for i in range(6):  # each take finds it held: it stays a spare, neither written nor freed
            with lockfile.replacing(target, spares=pool) as fd:
                lockfile.put(fd, b"new %d\n" % i)
            assert target.stat().st_ino != mapped and mapped in spare_inodes(tmp_path)
        out, _ = reader.communicate("go\n", timeout=30)
    finally:
        reader.kill()
    assert out == "what the reader mapped\n"
    assert target.read_bytes() == b"new 5\n"
    written = set()
    for i in range(4):  # let go of: its inode is written again
        with lockfile.replacing(target, spares=pool) as fd:
            lockfile.put(fd, b"later %d\n" % i)
        written.add(target.stat().st_ino)
    assert mapped in written and target.read_bytes() == b"later 3\n"


def test_a_spare_held_for_long_is_let_go(tmp_path: Path) -> None:
    pool = spares.Spares(tmp_path)
    held = tmp_path / "old-pack"
    held.write_bytes(b"mapped for good\n")
    with open(held, "rb") as reader:  # an open file: the kernel refuses the lease
        pool.remove(str(held))
        for _ in range(spares.HELD_TRIES - 1):
            assert pool.take() is None
        assert len(spare_inodes(tmp_path)) == 1  # still a spare, tried again each time
        assert pool.take() is None
        assert spare_inodes(tmp_path) == set()  # let go: freed when its reader closes it
        assert reader.read() == b"mapped for good\n"


def test_a_held_lock_is_not_taken_with_a_spare_and_the_spare_stays(tmp_path: Path) -> None:
    pool = spares.Spares(tmp_path)
    target = tmp_path / "main"
    target.write_bytes(b"a\n")
    with lockfile.replacing(target, spares=pool) as fd:
        lockfile.put(fd, b"b\n")
    before = spare_inodes(tmp_path)
    assert len(before) == 1
    (tmp_path / "main.lock").write_bytes(b"theirs")
    with pytest.raises(lockfile.LockHeld), lockfile.replacing(target, spares=pool, wait=0.05):
        pass
    assert (tmp_path / "main.lock").read_bytes() == b"theirs"
    assert target.read_bytes() == b"b\n" and spare_inodes(tmp_path) == before


def test_spares_stay_within_their_count_and_bytes(tmp_path: Path) -> None:
    pool = spares.Spares(tmp_path)
    big = b"x" * (spares.KEEP_BYTES // 3)
    for i in range(spares.KEEP + 10):
        path = tmp_path / f"pack-{i}"
        path.write_bytes(big if i % 2 else b"small %d" % i)
        pool.remove(str(path))
        assert not path.exists()
    held = list((tmp_path / spares.DIR).iterdir())
    assert 0 < len(held) <= spares.KEEP
    assert sum(p.stat().st_size for p in held) <= spares.KEEP_BYTES


def test_without_leases_no_spare_is_kept_and_files_are_replaced_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spares, "_leases", False)  # as where the kernel refuses them
    pool = spares.Spares(tmp_path)
    target = tmp_path / "index"
    target.write_bytes(b"0\n")
    for i in range(1, 5):
        with lockfile.replacing(target, spares=pool) as fd:
            lockfile.put(fd, b"%d\n" % i)
        assert target.read_bytes() == b"%d\n" % i
    pool.remove(str(target))
    assert not target.exists() and spare_inodes(tmp_path) == set()


def test_commits_write_their_packs_branch_and_index_into_spare_inodes(tmp_path: Path) -> None:
    repo = WorkspaceRepo.create(tmp_path / "ws", {"README.md": b"r\n"}, "init", SIG)
    git_dir = Path(repo.repo.path)
    reused = 0
    for i in range(120):
        before = spare_inodes(git_dir)
        repo.commit(Changeset({f"notes/n{i}.md": b"%d\n" % i}, f"note {i}"), SIG)
        now = {p.stat().st_ino for p in (git_dir / "objects" / "pack").iterdir()}
        now |= {(git_dir / "index").stat().st_ino, (git_dir / "refs/heads/main").stat().st_ino}
        reused += len(now & before)
    assert reused > 120  # the branch and the index alone take one each per commit
    held = list((git_dir / spares.DIR).iterdir())
    assert len(held) <= spares.KEEP
    assert sum(p.stat().st_size for p in held) <= spares.KEEP_BYTES
    subprocess.run(["git", "-C", str(repo.path), "fsck", "--strict", "--no-dangling"],
                   check=True, capture_output=True)
    for idx in (git_dir / "objects" / "pack").glob("*.idx"):
        subprocess.run(["git", "-C", str(repo.path), "verify-pack", str(idx)], check=True,
                       capture_output=True)
    assert git(repo.path, "status", "--porcelain") == ""
    assert git(repo.path, "rev-list", "--count", "main").strip() == "121"
    fresh = WorkspaceRepo(repo.path)  # a new handle reads every commit's files
    assert fresh.read_blob(fresh.tip(), "notes/n7.md") == b"7\n"


def test_a_handle_let_go_is_freed_at_once_and_maps_no_removed_pack(tmp_path: Path) -> None:
    repo = WorkspaceRepo.create(tmp_path / "ws", {"README.md": b"r\n"}, "init", SIG)
    gc.disable()
    try:
        old = weakref.ref(repo.repo)
        for i in range(packs.TIER_FULL * 2):  # enough commits to roll packs up
            repo.commit(Changeset({f"f{i}.txt": b"%d\n" % i}, f"c{i}"), SIG)
        assert old() is None  # reopened after a roll-up, and freed without the cyclic gc
        with open("/proc/self/maps") as maps:  # this repository's: another test's may linger
            removed = [line for line in maps
                       if str(tmp_path) in line and "pack-" in line and "(deleted)" in line]
        assert removed == []
    finally:
        gc.enable()
    assert list(repo.repo.branches.local) == ["main"]
    assert repo.repo.references["refs/heads/main"].target == repo.tip().id


def test_a_new_file_takes_the_spare_nearest_its_size_in_blocks(tmp_path: Path) -> None:
    pool = spares.Spares(tmp_path)
    sizes = {"big": 40_000, "page": 4_000, "tiny": 41}
    inodes = {}
    for name, size in sizes.items():
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        inodes[name] = path.stat().st_ino
        pool.remove(str(path))  # kept as a spare, oldest first: big, page, tiny
    pack = tmp_path / "pack"
    assert pool.create(str(pack), b"p" * 3_000)  # one block: the page-sized spare, not the oldest
    assert pack.stat().st_ino == inodes["page"] and pack.read_bytes() == b"p" * 3_000
    lock = tmp_path / "main"
    lock.write_bytes(b"old\n")
    with lockfile.replacing(lock, spares=pool, size=41) as fd:
        lockfile.put(fd, b"a" * 40 + b"\n")
    assert lock.stat().st_ino == inodes["tiny"]
    big = tmp_path / "merged"
    assert pool.create(str(big), b"m" * 36_000)
    assert big.stat().st_ino == inodes["big"] and big.read_bytes() == b"m" * 36_000


def test_a_removed_file_is_renamed_into_the_spares_and_never_takes_an_older_spares_name(
    tmp_path: Path,
) -> None:
    pool = spares.Spares(tmp_path)
    folder = tmp_path / spares.DIR
    folder.mkdir()
    earlier = folder / f"{os.getpid()}-0"  # a spare an earlier process of this pid left
    earlier.write_bytes(b"earlier")
    pack = tmp_path / "pack-1.pack"
    pack.write_bytes(b"p" * 100)
    inode = pack.stat().st_ino
    pool.remove(str(pack), size=100)  # the size known: no stat needed
    assert not pack.exists()
    assert earlier.read_bytes() == b"earlier"
    assert inode in spare_inodes(tmp_path)
    assert pool.take(100) is not None  # and it is taken again for a new file


OTHER_OWNER = """
import os, sys
from floom_git.storage import spares
os.setgid(65534)
os.setuid(65534)  # a server that is not root: leases only on its own files
pool = spares.Spares(sys.argv[1])
taken = pool.take(10)
print(spares._leases, taken is not None and os.path.basename(taken[1]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another user")
def test_a_spare_another_user_owns_is_let_go_and_leases_stay_on(tmp_path: Path) -> None:
    """A file of another owner (an index a person's git wrote, group-writable) is refused a
    lease with EACCES: that one spare is let go, and spares stay in use for the rest."""
    git_dir = Path(tempfile.mkdtemp())  # not under pytest's private folder: `nobody` walks it
    try:
        folder = git_dir / spares.DIR
        folder.mkdir()
        for where in (git_dir, folder):
            where.chmod(0o777)
        theirs = folder / "theirs"  # root's, writable by all; nearest the size asked
        theirs.write_bytes(b"x" * 10)
        theirs.chmod(0o666)
        ours = folder / "ours"
        ours.write_bytes(b"y" * 9000)
        os.chown(ours, 65534, 65534)
        done = subprocess.run([sys.executable, "-c", OTHER_OWNER, str(git_dir)],
                              capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parents[2])
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["True", "ours"]
        assert not theirs.exists()  # let go: never written by a process that does not own it
    finally:
        shutil.rmtree(git_dir, ignore_errors=True)

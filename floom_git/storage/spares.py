"""Spare inodes: the files a write replaces or removes in .git (a branch's old file, the old
index, rolled-up packs) are kept aside in .git/floom-spare/ and their inodes written again for
the next lock file or pack, instead of being freed while new ones are allocated.

Every write replaces the branch and the index and adds a pack's two files, and rolling packs up
removes as many: about four inodes freed and five allocated per write. On ext4 without a journal
an allocation steps past every inode of the block group freed in the last minutes (the kernel's
`recently_deleted`), so each one freed makes every later one dearer: measured as a fifth of the
server's CPU per write on a fresh disk, more after a busy hour (docs/performance.md). A spare is
written again only when nobody else holds it open or mapped, which the kernel tells by granting
a write lease (a reader of an old pack or index never sees its bytes change); otherwise it stays
a spare for a later write (it is let go only when held for long) and a new file is made for
this one. Where leases are refused (other file systems, other owners), spares are never used.

The folder is private to the writer: everything here runs under the workspace's writer lock.
git ignores the folder; nothing names its files.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import itertools
import os
import secrets
import signal
import stat
from collections.abc import Callable
from pathlib import Path

DIR = "floom-spare"
KEEP = 32  # spares kept per repository
KEEP_BYTES = 1 << 20  # and their bytes at most: past either, a removed file is freed
LOOK = 8  # how many of the oldest spares a new file picks the nearest in size from
HELD_TRIES = 16  # takes that find a spare held before it is let go
BLOCK = 4096
# A lease broken in the instant it is held (nobody opens a spare) signals its holder: with a
# signal ignored unless handled (SIGIO, the default, would end the process).
_F_SETSIG = getattr(fcntl, "F_SETSIG", 10)  # Linux only, as leases are
_LEASE_SIGNAL = signal.SIGURG
_NAMES = itertools.count()
_RUN = secrets.token_hex(4)  # this process's spares, apart from an earlier one with its pid
_leases = hasattr(fcntl, "F_SETLEASE")  # False once the kernel refused one for good
_BY_DIR: dict[str, Spares] = {}


class Spares:
    """The spare inodes of one repository."""

    def __init__(self, git_dir: Path) -> None:
        self.dir = os.path.join(git_dir, DIR)
        self._sizes: dict[str, int] | None = None  # name -> bytes, of what is in the folder
        self._held: dict[str, int] = {}  # name -> takes that found the spare held

    def take(self, size: int = 0) -> tuple[int, str] | None:
        """An open (read-write) spare that nobody else uses, still named in the spare folder,
        and its path; None when there is none. Of the oldest few (the likeliest to be let go
        of), the one nearest `size` in blocks: making a file shorter by whole blocks frees them
        and waits for their write-out (measured at 0.5 ms), longer allocates them.

        A spare still held (a pack a roll-up removed a moment ago, which this process's libgit2
        handle maps until it is opened again; an old index a person's git reads) stays a spare,
        behind the others, and is tried again later: letting it go freed its inode, and every
        inode freed makes each later allocation dearer (above), while a new one was made in its
        place. One held through HELD_TRIES takes is let go."""
        if not _leases:
            return None
        sizes = self._list()
        held: dict[str, int] = {}
        try:
            while sizes and len(held) < LOOK:
                name = _nearest(sizes, size)
                have = sizes.pop(name)
                path = os.path.join(self.dir, name)
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
                except FileNotFoundError:
                    self._held.pop(name, None)
                    continue
                except OSError:  # not ours to write (a read-only pack of git's): let it go
                    self._let_go(name)
                    continue
                state = _state(fd)
                if state is _State.ALONE:
                    self._held.pop(name, None)
                    return fd, path
                os.close(fd)
                tries = self._held.get(name, 0) + 1
                if state is _State.HELD and tries < HELD_TRIES:
                    self._held[name] = tries
                    held[name] = have
                else:
                    self._let_go(name)  # in use for long, or not a lone file: freed when let go
        finally:
            sizes.update(held)  # after the others: the oldest are tried first
        return None

    def _let_go(self, name: str) -> None:
        self._held.pop(name, None)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.dir, name))

    def give_back(self, fd: int | None, path: str) -> None:
        """A spare taken but not placed (closed here when `fd` is given)."""
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            self._list()[os.path.basename(path)] = os.stat(path).st_size

    def place(self, path: str, target: str) -> bool:
        """Name the spare at `path` `target`, only if nothing is there (a lock is taken so);
        False when `target` exists (the spare stays where it is)."""
        try:
            os.link(path, target)
        except FileExistsError:
            return False
        with contextlib.suppress(OSError):
            os.unlink(path)
        return True

    def create(self, target: str, data: bytes) -> bool:
        """Create `target` holding `data` in a spare, written before it is named, so that no
        reader sees it half written; False when no spare is free (nothing was done). When
        `target` exists already (a pack: the same bytes by name), the spare stays a spare."""
        taken = self.take(len(data))
        if taken is None:
            return False
        fd, path = taken
        try:
            fill(fd, data)
        except BaseException:
            self.give_back(fd, path)
            raise
        os.close(fd)
        if not self.place(path, target):
            self.give_back(None, path)
        return True

    def keep(self, path: str, *, size: int | None = None) -> bool:
        """Add the inode of `path` to the spares under a second name, so that it is not freed
        when `path` is replaced (renamed over) or removed; False when the spares are full or
        `path` is not there (or spares cannot be used here)."""
        return self._adopt(path, size, os.link)

    def remove(self, path: str, *, size: int | None = None) -> None:
        """Remove `path`, keeping its inode as a spare when there is room: one rename into the
        spare folder (`size`, its size in bytes, when known, saves a stat)."""
        if not self._adopt(path, size, os.rename):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _adopt(self, path: str, size: int | None,
               name_it: Callable[[str, str], None]) -> bool:
        """Name the inode of `path` in the spare folder with `name_it` (link: `path` stays;
        rename: it goes); False when there is no room or it could not be."""
        if not _leases:
            return False
        sizes = self._list()
        try:
            size = os.stat(path).st_size if size is None else size
        except OSError:
            return False
        if len(sizes) >= KEEP or sum(sizes.values()) + size > KEEP_BYTES:
            return False
        for _ in range(3):
            name = f"{os.getpid()}-{_RUN}-{next(_NAMES)}"  # never a name a spare has
            try:
                name_it(path, os.path.join(self.dir, name))
            except FileExistsError:
                continue
            except FileNotFoundError:
                if not os.path.isdir(path) and os.path.exists(path):
                    os.makedirs(self.dir, exist_ok=True)
                    continue
                return False
            except OSError:  # no hard links here, or not a file
                return False
            sizes[name] = size
            return True
        return False

    def _list(self) -> dict[str, int]:
        if self._sizes is None:
            sizes: dict[str, int] = {}
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for entry in os.scandir(self.dir):
                    with contextlib.suppress(OSError):
                        sizes[entry.name] = entry.stat(follow_symlinks=False).st_size
            self._sizes = sizes
        return self._sizes


def _nearest(sizes: dict[str, int], size: int) -> str:
    """Of the first LOOK spares (oldest first), the first whose size in blocks is nearest."""
    want = -(-size // BLOCK)
    best, off = "", -1
    for name, have in itertools.islice(sizes.items(), LOOK):
        gap = abs(-(-have // BLOCK) - want)
        if off < 0 or gap < off:
            best, off = name, gap
            if gap == 0:
                break
    return best


def of(git_dir: Path) -> Spares:
    """The spares of the repository at `git_dir` (one object per folder per process)."""
    key = str(git_dir)
    spares = _BY_DIR.get(key)
    if spares is None:
        if len(_BY_DIR) >= 256:
            _BY_DIR.clear()
        spares = _BY_DIR[key] = Spares(git_dir)
    return spares


def fill(fd: int, data: bytes, mode: int = 0o644) -> None:
    """Make the file `fd` hold exactly `data`, its blocks allocated first (renaming a file whose
    blocks are not allocated yet over another makes ext4 write it out there and then)."""
    st = os.fstat(fd)
    if stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)
    if len(data) > st.st_size:
        with contextlib.suppress(OSError):  # only saves time
            os.posix_fallocate(fd, st.st_size, len(data) - st.st_size)
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    if st.st_size > len(data):  # a spare that was longer (a truncation frees blocks: only then)
        os.ftruncate(fd, len(data))


class _State(enum.Enum):
    ALONE = "alone"  # one name, nobody else has it open or mapped: ours to write
    HELD = "held"  # open or mapped by someone (the kernel refused the lease for that)
    UNFIT = "unfit"  # another name, not a regular file, or leases refused here for good


def _state(fd: int) -> _State:
    """Whether the file `fd` has one name and no other open file or mapping: the kernel
    grants a write lease only then (held for this instant)."""
    global _leases
    try:
        st = os.fstat(fd)
    except OSError:
        return _State.UNFIT
    if st.st_nlink != 1 or not stat.S_ISREG(st.st_mode) or not _leases:
        return _State.UNFIT
    try:
        fcntl.fcntl(fd, _F_SETSIG, _LEASE_SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return _State.HELD
        if exc.errno in (errno.EACCES, errno.EPERM):  # another owner's file: this one only
            return _State.UNFIT
        _leases = False  # not "in use": never again here
        return _State.UNFIT
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return _State.ALONE

"""The working tree's on-disk index (.git/index), updated without re-encoding every entry.

libgit2 rewrites the whole index on every write, entry by entry, and first diffs its racily
clean entries against the disk: ~1 µs per file per write (1 ms at 1,000 files, 4 ms at 5,000),
the largest share of an API write's CPU. Here the entries stay encoded between writes, kept per
git folder while the file on disk is the one this process wrote; a write joins them and adds the
checksum. An index that another program wrote since (a person's `git status` or `git add`) is
read again first.

Written as git's version 2 (version 3 when an entry carries extended flags), read in versions
2-4. Optional extensions (cached trees, the untracked cache, resolve-undo) are caches: they are
dropped, and git rebuilds what it wants. An index with a required extension (a split or sparse
index) or a checksum that does not match is not handled here: load() answers None and the
caller goes through libgit2.

Racily clean entries: git trusts an entry's stat data only when the file's mtime is older than
the index's. When a write moves the index into a later second, entries from the second of the
index before lose that doubt; each of them is checked (lstat) and one whose file changed since
its stat was taken is smudged (size 0), so git compares its content, as git itself does.
Blocking; one writer per git folder at a time (the workspace write lock).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from floom_git.storage import lockfile, spares

SIGNATURE = b"DIRC"
LOCK_WAIT = 2.0  # a person's `git status` holds .git/index.lock for a moment only
# ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size, blob id, flags
_HEAD = struct.Struct(">10I20sH")
_EXTENDED = 0x4000
_NAME_MASK = 0xFFF
_MASK32 = 0xFFFFFFFF
_SIZE_AT = 36  # offset of the size field in an entry


@dataclass
class _Stamp:
    ino: int
    size: int
    mtime_ns: int


@dataclass
class Index:
    """The entries of one index, encoded, sorted by (path, stage): `entries[i]` is `keys[i]`'s."""

    git_dir: Path
    keys: list[tuple[bytes, int]] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)
    version: int = 2  # 3 once an entry carries extended flags (only git writes such entries)
    stamp: _Stamp | None = None  # the file these entries were read from or written to

    def remove(self, path: str) -> None:
        """Drop `path` at every stage (nothing when it is not there)."""
        name = path.encode()
        at = bisect.bisect_left(self.keys, (name, 0))
        while at < len(self.keys) and self.keys[at][0] == name:
            del self.keys[at], self.entries[at]

    def set(self, path: str, oid: bytes, mode: int, st: os.stat_result | None) -> None:
        """Record `path` as a file with blob `oid` at stage 0: with stat data `st` where the disk
        holds exactly that (None: git compares the content). Entries a file cannot stand
        beside are dropped: the folder it replaces, a file where its folders are."""
        name = path.encode()
        self.remove(path)
        under = (name + b"/", 0)
        at = bisect.bisect_left(self.keys, under)
        while at < len(self.keys) and self.keys[at][0].startswith(under[0]):
            del self.keys[at], self.entries[at]
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.remove("/".join(parts[:i]))
        at = bisect.bisect_left(self.keys, (name, 0))
        self.keys.insert(at, (name, 0))
        self.entries.insert(at, encode(name, oid, mode, st))

    def write(self, root: Path) -> None:
        """Replace .git/index with these entries (`root`: the working tree)."""
        try:
            with lockfile.replacing(self.git_dir / "index", wait=LOCK_WAIT,
                                   spares=spares.of(self.git_dir),
                                   size=self.stamp.size if self.stamp else 0) as fd:
                lockfile.put(fd, self._bytes())
                st = os.fstat(fd)
                if self._leaves_racy_second(st.st_mtime_ns):
                    self._smudge_changed(root)  # written again, the doubtful entries smudged
                    lockfile.put(fd, self._bytes())
                    st = os.fstat(fd)
        except BaseException:
            self.stamp = None  # read it again next time
            raise
        self.stamp = _Stamp(st.st_ino, st.st_size, st.st_mtime_ns)

    def _bytes(self) -> bytes:
        head = SIGNATURE + struct.pack(">II", self.version, len(self.entries))
        body = head + b"".join(self.entries)
        return body + hashlib.sha1(body).digest()

    def _leaves_racy_second(self, new_mtime_ns: int) -> bool:
        if self.stamp is None:
            return True  # unknown: check them all
        return new_mtime_ns // 1_000_000_000 > self.stamp.mtime_ns // 1_000_000_000

    def _smudge_changed(self, root: Path) -> None:
        """Smudge each entry that was racily clean in the index before, if its file's stat
        differs now from what the entry recorded."""
        since = self.stamp.mtime_ns // 1_000_000_000 if self.stamp is not None else 0
        for at, key in enumerate(self.keys):
            entry = self.entries[at]
            fields = _HEAD.unpack_from(entry)
            mtime_s, size = fields[2], fields[9]
            if (mtime_s == 0 and fields[3] == 0) or mtime_s < since or size == 0:
                continue
            try:
                st = os.lstat(root / key[0].decode("utf-8", "surrogateescape"))
            except OSError:
                st = None
            if st is None or _stat_fields(st) != (fields[0], fields[1], fields[2], fields[3],
                                                   fields[4], fields[5], fields[7], fields[8],
                                                   fields[9]):
                self.entries[at] = entry[:_SIZE_AT] + b"\0\0\0\0" + entry[_SIZE_AT + 4:]


KEEP = 64  # workspaces whose index stays encoded in memory (~130 bytes per file)
_CACHE: OrderedDict[Path, Index] = OrderedDict()


def load(git_dir: Path) -> Index | None:
    """The index of `git_dir` (an empty one when there is none); None when it is in a form
    this module does not write (the caller then uses libgit2)."""
    path = git_dir / "index"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _keep(Index(git_dir))
    cached = _CACHE.get(git_dir)
    if cached is not None and cached.stamp == _Stamp(st.st_ino, st.st_size, st.st_mtime_ns):
        _CACHE.move_to_end(git_dir)
        return cached
    _CACHE.pop(git_dir, None)
    try:
        with path.open("rb") as fh:
            data = fh.read()
            st = os.fstat(fh.fileno())
    except FileNotFoundError:
        return load(git_dir)
    parsed = parse(git_dir, data)
    if parsed is None:
        return None
    parsed.stamp = _Stamp(st.st_ino, st.st_size, st.st_mtime_ns)
    return _keep(parsed)


def _keep(index: Index) -> Index:
    _CACHE[index.git_dir] = index
    _CACHE.move_to_end(index.git_dir)
    while len(_CACHE) > KEEP:
        _CACHE.popitem(last=False)
    return index


def encode(name: bytes, oid: bytes, mode: int, st: os.stat_result | None,
           stage: int = 0, extended: bytes | None = None) -> bytes:
    """One entry in the version 2/3 layout: 62 bytes, extended flags, the path, 1-8 NULs."""
    stat_part = _stat_fields(st) if st is not None else (0,) * 9
    ctime_s, ctime_ns, mtime_s, mtime_ns, dev, ino, uid, gid, size = stat_part
    flags = min(len(name), _NAME_MASK) | (stage << 12) | (_EXTENDED if extended else 0)
    head = _HEAD.pack(ctime_s, ctime_ns, mtime_s, mtime_ns, dev, ino, mode, uid, gid, size,
                      oid, flags)
    body = head + (extended or b"") + name
    return body + b"\0" * (8 - len(body) % 8)


def parse(git_dir: Path, data: bytes) -> Index | None:
    """Entries of an index file in versions 2-4; None for anything else (a required
    extension, a bad checksum, a version this does not know)."""
    if len(data) < 32 or data[:4] != SIGNATURE:
        return None
    if hashlib.sha1(data[:-20]).digest() != data[-20:]:
        return None
    version, count = struct.unpack_from(">II", data, 4)
    if version not in (2, 3, 4):
        return None
    index = Index(git_dir)
    pos, previous = 12, b""
    end = len(data) - 20
    try:
        for _ in range(count):
            fields = _HEAD.unpack_from(data, pos)
            flags = fields[11]
            pos += _HEAD.size
            extended = None
            if flags & _EXTENDED:
                if version < 3:
                    return None
                extended = data[pos:pos + 2]
                pos += 2
            if version == 4:
                strip, pos = _varint(data, pos)
                nul = data.index(b"\0", pos)
                name = previous[:len(previous) - strip] + data[pos:nul]
                pos = nul + 1
            else:
                nul = data.index(b"\0", pos)
                name = data[pos:nul]
                start = pos - _HEAD.size - (2 if extended else 0)
                pos = start + ((_HEAD.size + (2 if extended else 0) + len(name) + 8) & ~7)
            previous = name
            stage = (flags >> 12) & 3
            key = (name, stage)
            head = _HEAD.pack(*fields[:11], (flags & ~_NAME_MASK) | min(len(name), _NAME_MASK))
            body = head + (extended or b"") + name
            index.entries.append(body + b"\0" * (8 - len(body) % 8))
            index.keys.append(key)
            if extended:
                index.version = 3
        while pos < end:  # extensions: optional ones are caches, dropped
            signature = data[pos:pos + 4]
            (size,) = struct.unpack_from(">I", data, pos + 4)
            if not b"A" <= signature[:1] <= b"Z":
                return None
            pos += 8 + size
    except (struct.error, ValueError, IndexError):
        return None
    if pos != end or index.keys != sorted(index.keys):
        return None
    return index


def _stat_fields(st: os.stat_result) -> tuple[int, ...]:
    return (int(st.st_ctime_ns // 1_000_000_000) & _MASK32, st.st_ctime_ns % 1_000_000_000,
            int(st.st_mtime_ns // 1_000_000_000) & _MASK32, st.st_mtime_ns % 1_000_000_000,
            st.st_dev & _MASK32, st.st_ino & _MASK32, st.st_uid & _MASK32, st.st_gid & _MASK32,
            st.st_size & _MASK32)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset encoding (the v4 path prefix length)."""
    c = data[pos]
    pos += 1
    value = c & 0x7F
    while c & 0x80:
        c = data[pos]
        pos += 1
        value = ((value + 1) << 7) | (c & 0x7F)
    return value, pos

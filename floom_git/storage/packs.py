"""A commit's new objects stored as one pack (a .pack and its .idx) instead of one loose file
each, and the small packs so written rolled into bigger ones, so lookups stay few.

Seven loose objects per commit were seven new files, seven inodes for ext4 to find, in up to
seven folders: a third to a half of a write's CPU (docs/performance.md). A pack of them is two
files. Every pack adds a place for libgit2 to look for an object, so packs are rolled up by size
tier (LSM style): when TIER_FULL packs of one tier exist, they are copied into one pack of a
higher tier. Only packs without deltas are rolled (ours; a received pack with deltas is left to
git), entry by entry and byte for byte, so nothing is compressed again; packs past ROLL_MAX are
left to git (history.upkeep: a geometric repack, with deltas). The formats are git's
(Documentation/gitformat-pack.txt): pack version 2, undeltified entries, index version 2.

Objects are never served to libgit2 from memory: pygit2 calls a Python odb backend without
taking the GIL, which is unsafe wherever pygit2 released it (its cffi calls do).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import ObjectType

from floom_git.storage import spares
from floom_git.storage.new_files import NewBytes

KINDS = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
TIER_FULL = 8  # packs of one size tier (sizes within 8x) that are rolled into one
ROLL_MAX = 8 << 20  # a pack this big is not rolled again; git gc repacks it with deltas
_IDX_MAGIC = b"\377tOc\0\0\0\2"
# A tree is mostly object ids, 20 random bytes per entry: zlib level 1 made a big one a third
# smaller at four times the CPU of storing it, and every commit into a folder writes its tree
# whole, which libgit2 then inflates again. Past this size trees are stored uncompressed
# (measured: a folder of 3,000 files cost 1.5 ms of compression per commit); git's repack
# (history.upkeep) gives them deltas and compresses them.
STORED_TREE = 4096
_NOT_OURS: set[tuple[str, str]] = set()  # (pack folder, name) of packs with deltas
_SIZES: dict[str, int] = {}  # "<pack folder>/<name>": size of the .pack
WRITTEN_BYTES = 4 << 20  # the entries of packs written lately, kept for their roll-up


def object_id(kind: int, data: bytes) -> bytes:
    """git's name for an object: SHA-1 of "<kind> <size>\\0" and the bytes."""
    digest = hashlib.sha1(b"%s %d\0" % (KINDS[kind], len(data)))
    digest.update(data)
    return digest.digest()


def commit_data(tree: pygit2.Oid, parents: Sequence[pygit2.Oid], author: pygit2.Signature,
                committer: pygit2.Signature, message: str) -> bytes:
    """A commit object's bytes, as libgit2's create_commit writes them (no encoding header)."""
    lines = [b"tree %s\n" % str(tree).encode()]
    lines += [b"parent %s\n" % str(parent).encode() for parent in parents]
    lines += [_person(b"author", author), _person(b"committer", committer), b"\n",
              message.encode()]
    return b"".join(lines)


def _person(role: bytes, who: pygit2.Signature) -> bytes:
    offset = who.offset
    sign = b"-" if offset < 0 else b"+"
    hours, minutes = divmod(abs(offset), 60)
    return b"%s %s <%s> %d %s%02d%02d\n" % (role, who.raw_name, who.raw_email, who.time, sign,
                                           hours, minutes)


class Objects:
    """New objects kept until they are written as one pack."""

    def __init__(self) -> None:
        self._by_id: dict[bytes, tuple[int, bytes]] = {}

    def add(self, kind: int, data: bytes) -> bytes:
        """Keep an object (commit, tree or blob); its raw 20-byte id."""
        oid = object_id(kind, data)
        self._by_id.setdefault(oid, (kind, data))
        return oid

    def clear(self) -> None:
        self._by_id = {}

    def write(self, git_dir: Path) -> str | None:
        """Write the objects kept as one pack and forget them; the pack's name (None: none
        kept). Its index is named last, so no reader sees the pack before it is whole."""
        if not self._by_id:
            return None
        entries = []
        for oid, (kind, data) in self._by_id.items():
            # Level 1, as git and libgit2 compress loose objects (core.looseCompression); a big
            # tree is stored (level 0, see STORED_TREE).
            level = 0 if kind == ObjectType.TREE and len(data) > STORED_TREE else 1
            entries.append((oid, _header(kind, len(data)) + zlib.compress(data, level)))
        self._by_id = {}
        return _write(git_dir / "objects" / "pack", entries)


def roll_up(git_dir: Path) -> bool:
    """Roll a full tier of small packs into one (repeatedly); True when packs were removed.

    Run where nothing else rolls packs of this repository (under the writer lock). A reader
    that listed a removed pack finds its objects in the new one, which exists first. The folder
    is listed only when the packs counted at the last listing and written here since could
    fill a tier, or every RELIST calls (packs that git or a push added meanwhile).
    """
    folder = git_dir / "objects" / "pack"
    key = str(folder)
    counted = _COUNTED.get(key)
    if counted is not None and counted.calls < RELIST and max(counted.tiers) < TIER_FULL:
        counted.calls += 1
        return False
    rolled = False
    while True:
        tiers: defaultdict[int, list[str]] = defaultdict(list)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return rolled
        present = set(names)
        for name in names:
            if not (name.startswith("pack-") and name.endswith(".idx")):
                continue
            base = name[:-4]
            if base + ".keep" in present or base + ".pack" not in present:
                continue
            if (key, base) in _NOT_OURS:
                continue
            size = _size(folder, base)
            if size is not None and size < ROLL_MAX:
                tiers[_tier(size)].append(base)
        full = [bases for _, bases in sorted(tiers.items()) if len(bases) >= TIER_FULL]
        if not full or not _merge(folder, full[0]):
            if len(_COUNTED) >= 4096:
                _COUNTED.clear()
            _COUNTED[key] = _Counted([len(tiers.get(t, ())) for t in range(_TIERS)])
            return rolled
        rolled = True


@dataclass
class _Counted:
    """A pack folder's small packs per tier: at its last listing, and written here since."""

    tiers: list[int]
    calls: int = 0  # roll-ups answered from the counts since the listing


RELIST = 64
_TIERS = ROLL_MAX.bit_length() // 3 + 1
_COUNTED: dict[str, _Counted] = {}


def _tier(size: int) -> int:
    return size.bit_length() // 3


def _written(folder: str, size: int) -> None:
    counted = _COUNTED.get(folder)
    if counted is not None and size < ROLL_MAX:
        counted.tiers[_tier(size)] += 1


def _size(folder: Path, base: str) -> int | None:
    """A pack's size, remembered: a pack never changes under its name (its checksum)."""
    key = f"{folder}/{base}"
    size = _SIZES.get(key)
    if size is None:
        try:
            size = os.stat(f"{key}.pack").st_size
        except FileNotFoundError:
            return None
        if len(_SIZES) >= 4096:
            _SIZES.clear()
        _SIZES[key] = size
    return size


def unkept(git_dir: Path) -> list[str]:
    """The repository's packs (pack-<name>, no extension) that no .keep file keeps: those git's
    gc counts and may repack."""
    try:
        names = set(os.listdir(git_dir / "objects" / "pack"))
    except FileNotFoundError:
        return []
    return [n[:-5] for n in names
            if n.startswith("pack-") and n.endswith(".pack") and n[:-5] + ".keep" not in names]


def big(git_dir: Path) -> int:
    """How many packs (without a .keep) are too big to be rolled here."""
    folder = git_dir / "objects" / "pack"
    sizes = (_size(folder, base) for base in unkept(git_dir))
    return sum(1 for size in sizes if size is not None and size >= ROLL_MAX)


def _merge(folder: Path, bases: list[str]) -> bool:
    """Copy the entries of the packs `bases` into one pack, then remove them. False when none
    of them could be rolled (each one with deltas is remembered and skipped from now on)."""
    entries: dict[bytes, bytes] = {}
    rolled = []
    for base in sorted(bases):
        found = _WRITTEN.take(f"{folder}/{base}")
        if found is None:
            try:
                found = _entries(folder, base)
            except FileNotFoundError:
                continue
        if found is None:
            _NOT_OURS.add((str(folder), base))
            continue
        for oid, raw in found:
            entries.setdefault(oid, raw)
        rolled.append((base, len(found)))
    if len(rolled) < 2:
        return False
    new = _write(folder, list(entries.items()), remember=False)
    spare = spares.of(folder.parent.parent)
    for base, count in rolled:
        if base == new:
            continue
        # The index first: nobody opens a pack without one. Each inode is kept for a later pack.
        spare.remove(str(folder / (base + ".idx")), size=_idx_size(count))
        spare.remove(str(folder / (base + ".pack")), size=_SIZES.get(f"{folder}/{base}"))
    return True


def _entries(folder: Path, base: str) -> list[tuple[bytes, bytes]] | None:
    """(id, raw entry) of every object of an undeltified pack; None when it has a delta, a
    64-bit offset, or is not what its index says."""
    idx = (folder / (base + ".idx")).read_bytes()
    pack = (folder / (base + ".pack")).read_bytes()
    if idx[:8] != _IDX_MAGIC or len(idx) < 1032 + 40 or pack[:4] != b"PACK":
        return None
    count = struct.unpack_from(">I", idx, 1028)[0]
    if len(idx) != 1032 + 28 * count + 40 or struct.unpack_from(">I", pack, 8)[0] != count:
        return None
    names = idx[1032:1032 + 20 * count]
    offsets = struct.unpack_from(f">{count}I", idx, 1032 + 24 * count)
    order = sorted(range(count), key=offsets.__getitem__)
    out = []
    end = len(pack) - 20
    for n, i in enumerate(order):
        start = offsets[i]
        stop = offsets[order[n + 1]] if n + 1 < count else end
        if start & 0x80000000 or not 12 <= start < stop <= end:
            return None
        if not 1 <= (pack[start] >> 4) & 7 <= 4:  # 6 and 7 are deltas on another object
            return None
        out.append((names[20 * i:20 * i + 20], pack[start:stop]))
    return out


def _write(folder: Path, entries: list[tuple[bytes, bytes]], *, remember: bool = True) -> str:
    """Write a pack of (id, raw entry) and its index; the pack's name, pack-<checksum>. With
    `remember`, its entries are kept for the roll-up that will copy them (_Written)."""
    parts = [b"PACK", struct.pack(">II", 2, len(entries))]
    table = []
    offset = 12
    for oid, raw in entries:
        table.append((oid, zlib.crc32(raw), offset))
        parts.append(raw)
        offset += len(raw)
    if offset >= 1 << 31:
        raise ValueError("a pack past 2 GiB needs 64-bit offsets, which are not written here")
    data = b"".join(parts)
    checksum = hashlib.sha1(data).digest()
    data += checksum
    table.sort()
    fanout = [0] * 256
    for oid, _, _ in table:
        fanout[oid[0]] += 1
    total = 0
    for i, n in enumerate(fanout):
        total += n
        fanout[i] = total
    n = len(table)
    index = b"".join([
        _IDX_MAGIC, struct.pack(">256I", *fanout), *(oid for oid, _, _ in table),
        struct.pack(f">{n}I", *(crc for _, crc, _ in table)),
        struct.pack(f">{n}I", *(off for _, _, off in table)), checksum,
    ])
    index += hashlib.sha1(index).digest()
    base = "pack-" + checksum.hex()
    folder.mkdir(parents=True, exist_ok=True)
    spare = spares.of(folder.parent.parent)
    for ext, body in ((".pack", data), (".idx", index)):
        target = str(folder / (base + ext))
        if spare.create(target, body):  # an inode of a removed pack nobody reads any more
            continue
        new = NewBytes(body, False, str(folder), lambda: str(folder))
        try:
            new.link(target)  # already there: the same bytes, by name
        finally:
            new.close()
    _written(str(folder), len(data))
    if remember and len(data) < ROLL_MAX:
        _WRITTEN.put(f"{folder}/{base}", entries, len(data))
    return base


def _idx_size(count: int) -> int:
    """The size of a version-2 index of `count` objects with 32-bit offsets (as written here)."""
    return 1032 + 28 * count + 40


class _Written:
    """The entries of the packs written lately ("<pack folder>/<name>": entries), newest last,
    within WRITTEN_BYTES: a roll-up copies them without reading the pack and its index back
    (they are what was written, and a pack's name is its checksum). Writers of different
    workspaces share it from their threads."""

    def __init__(self) -> None:
        self._packs: OrderedDict[str, tuple[list[tuple[bytes, bytes]], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: str, entries: list[tuple[bytes, bytes]], size: int) -> None:
        with self._lock:
            self._drop(key)
            self._packs[key] = (entries, size)
            self._bytes += size
            while self._bytes > WRITTEN_BYTES:
                self._drop(next(iter(self._packs)))

    def take(self, key: str) -> list[tuple[bytes, bytes]] | None:
        with self._lock:
            kept = self._packs.get(key)
            self._drop(key)
        return kept[0] if kept is not None else None

    def _drop(self, key: str) -> None:
        kept = self._packs.pop(key, None)
        if kept is not None:
            self._bytes -= kept[1]


_WRITTEN = _Written()


def _header(kind: int, size: int) -> bytes:
    """An entry's header: the kind and the size, 4 bits then 7 per byte, low bits first."""
    out = bytearray()
    byte = (kind << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)

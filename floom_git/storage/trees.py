"""Writing the trees of a commit by editing their raw entries, kept per tree between commits.

A commit rewrites every tree from the root down to the files it changes. libgit2's TreeBuilder
loads each of them entry by entry, sorts and formats them again on write: for a folder of 650
files that was half of the tree's cost, on every commit into it. Here a tree's entries stay
encoded, in git's order, for the trees written or read lately (most commits edit the tree the
commit before wrote): an edit is a few list operations and a join. New trees and blobs are
hashed and kept for the commit's pack (storage/packs.py), which the commit writes.

The names written come from checked changesets (storage/changeset.admitted) and from trees
already in the repository; the objects they point to exist (in the same pack, or checked).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import Any

import pygit2
from pygit2.enums import FileMode, ObjectType

from floom_git.storage.changeset import REPLACE, TreeRef
from floom_git.storage.packs import Objects

KEEP = 64  # trees whose entries stay decoded (a few commits' worth of paths)


class _Entries:
    """One tree's entries in git's order: `keys[i]` sorts entry `raws[i]` (a folder's name
    sorts with a trailing slash)."""

    __slots__ = ("keys", "raws")

    def __init__(self, keys: list[bytes], raws: list[bytes]) -> None:
        self.keys = keys
        self.raws = raws

    def copy(self) -> _Entries:
        return _Entries(list(self.keys), list(self.raws))

    def find(self, name: bytes) -> tuple[int, int, bytes] | None:
        """(position, mode, object id) of the entry called `name`, file or folder."""
        for key in (name, name + b"/"):
            at = bisect.bisect_left(self.keys, key)
            if at < len(self.keys) and self.keys[at] == key:
                raw = self.raws[at]
                space = raw.index(b" ")
                return at, int(raw[:space], 8), raw[-20:]
        return None

    def remove(self, name: bytes) -> None:
        found = self.find(name)
        if found is not None:
            del self.keys[found[0]], self.raws[found[0]]

    def put(self, name: bytes, mode: int, oid: bytes) -> None:
        self.remove(name)
        key = name + b"/" if mode == FileMode.TREE else name
        at = bisect.bisect_left(self.keys, key)
        self.keys.insert(at, key)
        self.raws.insert(at, b"%o %s\0%s" % (mode, name, oid))


class TreeWriter:
    """Builds new trees of one repository from an old tree and nested changes."""

    def __init__(self, repo: pygit2.Repository, objects: Objects) -> None:
        self.repo = repo
        self.objects = objects  # where new trees and blobs go until the commit's pack is written
        self._kept: OrderedDict[bytes, _Entries] = OrderedDict()

    def build(self, tree_id: pygit2.Oid | None, nested: dict[str, Any]) -> pygit2.Oid | None:
        """The tree `tree_id` with `nested` applied (see changeset.nest); None when empty."""
        entries = self._entries(tree_id) if tree_id is not None else _Entries([], [])
        for name, value in nested.items():
            bname = name.encode()
            existing = entries.find(bname)
            if isinstance(value, dict):
                sub = existing[2] if existing is not None and existing[1] == FileMode.TREE else None
                if value.get(REPLACE):
                    sub = None
                value = {k: v for k, v in value.items() if k is not REPLACE}
                sub_id = self.build(pygit2.Oid(raw=sub) if sub is not None else None, value)
                if sub_id is None:
                    entries.remove(bname)
                else:
                    entries.put(bname, FileMode.TREE, sub_id.raw)
            elif value is None:
                entries.remove(bname)
            elif isinstance(value, TreeRef):
                restored = self.repo[value.oid]
                if not isinstance(restored, pygit2.Tree):
                    raise TypeError(f"TreeRef {value.oid} names a {restored.type_str}, not a tree")
                if len(restored) == 0:
                    entries.remove(bname)
                else:
                    entries.put(bname, FileMode.TREE, value.oid.raw)
            else:
                mode = FileMode.BLOB
                if existing is not None and existing[1] == FileMode.BLOB_EXECUTABLE:
                    mode = FileMode.BLOB_EXECUTABLE
                entries.put(bname, mode, self.objects.add(ObjectType.BLOB, value))
        if not entries.keys:
            return None
        oid = self.objects.add(ObjectType.TREE, b"".join(entries.raws))
        self._keep(oid, entries)
        return pygit2.Oid(raw=oid)

    def _entries(self, tree_id: pygit2.Oid) -> _Entries:
        """A copy of the tree's entries, to edit."""
        kept = self._kept.get(tree_id.raw)
        if kept is None:
            kept = _parse(self.repo.odb.read(tree_id)[1])
            self._keep(tree_id.raw, kept)
        else:
            self._kept.move_to_end(tree_id.raw)
        return kept.copy()

    def _keep(self, oid: bytes, entries: _Entries) -> None:
        self._kept[oid] = entries
        while len(self._kept) > KEEP:
            self._kept.popitem(last=False)


def _parse(raw: bytes) -> _Entries:
    keys: list[bytes] = []
    raws: list[bytes] = []
    pos, end = 0, len(raw)
    while pos < end:
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        stop = nul + 21
        name = raw[space + 1:nul]
        folder = int(raw[pos:space], 8) == FileMode.TREE
        keys.append(name + b"/" if folder else name)
        raws.append(raw[pos:stop])
        pos = stop
    return _Entries(keys, raws)

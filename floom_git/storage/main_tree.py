"""main's tree as the on-disk sync compares the working tree with it: path lookups with each
folder resolved once, whether bytes on disk are the blob main holds (git's own hashing), the
files HEAD has apart from main."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pygit2
from pygit2.enums import ObjectType

from floom_git.storage.repo import WorkspaceRepo


class MainTree:
    """main's tree at the moment it was opened (a storm asks for 30k paths, and a path lookup
    from the root costs ~80 us, so each folder is resolved once)."""

    def __init__(self, repo: WorkspaceRepo) -> None:
        self._repo = repo
        self._tip = repo.tip()
        self._dirs: dict[str, pygit2.Tree | None] = {
            "": self._tip.tree if self._tip is not None else None}

    def blob_id(self, rel: str) -> pygit2.Oid | None:
        """The id of the file main holds at `rel` (None: no file there)."""
        obj = self._get(rel)
        return obj.id if obj is not None and obj.type == ObjectType.BLOB else None

    def is_folder(self, rel: str) -> bool:
        return self._folder(rel) is not None

    def files_under(self, rel: str) -> Iterator[str]:
        """Every file main holds under folder `rel` (nothing when it is no folder)."""
        folder = self._folder(rel)
        if folder is not None:
            yield from (p for p, _ in self._repo.walk_tree(folder, rel))

    def holds(self, rel: str, data: bytes) -> bool:
        """`data` is the content of the file main holds at `rel`."""
        head = self.blob_id(rel)
        return head is not None and pygit2.hash(data) == head

    def holds_file(self, rel: str, path: Path) -> bool:
        """The file at `path` (hashed as git would, without reading it whole) is the one main
        holds at `rel`."""
        head = self.blob_id(rel)
        return head is not None and pygit2.hashfile(str(path)) == head

    def apart_at_head(self) -> set[str]:
        """Files where HEAD differs from main: status compares with HEAD, and a person may have
        checked out another branch in the working tree."""
        try:
            head = self._repo.repo.head.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError):
            return set()
        if self._tip is None or head.tree_id == self._tip.tree_id:
            return set()
        diff = head.tree.diff_to_tree(self._tip.tree)
        return {p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)}

    def _folder(self, rel: str) -> pygit2.Tree | None:
        if rel not in self._dirs:
            parent, _, name = rel.rpartition("/")
            obj = _entry(self._folder(parent), name)
            is_tree = obj is not None and obj.type == ObjectType.TREE
            self._dirs[rel] = cast(pygit2.Tree, obj) if is_tree else None
        return self._dirs[rel]

    def _get(self, rel: str) -> pygit2.Object | None:
        parent, _, name = rel.rpartition("/")
        return _entry(self._folder(parent), name)


def _entry(tree: pygit2.Tree | None, name: str) -> pygit2.Object | None:
    return tree[name] if tree is not None and name in tree else None

"""Which file paths differ between two trees of a repository: those a changeset may change
(a folder replaced or removed counts every file in it) and those two commits differ in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

import pygit2
from pygit2.enums import ObjectType

from floom_git.storage import worktree
from floom_git.storage.changeset import Change


def walk(tree: pygit2.Tree, prefix: str = "") -> Iterator[tuple[str, pygit2.Blob]]:
    """Yield (path, blob) for every file under `tree`, paths joined to `prefix`."""
    for item in tree:
        path = f"{prefix}/{item.name}" if prefix else str(item.name)
        if isinstance(item, pygit2.Tree):
            yield from walk(item, path)
        elif isinstance(item, pygit2.Blob):
            yield path, item


def expand(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree,
           changes: Mapping[str, Change]) -> list[str]:
    """Concrete file paths whose content may differ between `old` and `new` for `changes`."""
    out: set[str] = set()
    for path in changes:
        parts = path.split("/")
        for i in range(1, len(parts)):  # a file where a folder now is (or was)
            prefix = "/".join(parts[:i])
            if worktree.file_entry(old, prefix) or worktree.file_entry(new, prefix):
                out.add(prefix)
        for tree in (old, new):
            if tree is None:
                continue
            try:
                obj = tree[path]
            except KeyError:
                continue
            if obj.type == ObjectType.TREE:
                out.update(p for p, _ in walk(cast(pygit2.Tree, repo[obj.id]), path))
            else:
                out.add(path)
        if isinstance(changes[path], bytes):
            out.add(path)
    return sorted(out)


def changed_files(repo: pygit2.Repository, old: str | None, new: str | None) -> list[str]:
    """File paths that differ (content, mode, added or removed) between two commits; None
    stands for the empty tree."""
    if old == new:
        return []
    old_tree = repo[old].peel(pygit2.Tree) if old else None
    new_tree = repo[new].peel(pygit2.Tree) if new else None
    if new_tree is None:
        if old_tree is None:
            return []
        diff = old_tree.diff_to_tree()
    elif old_tree is None:
        diff = new_tree.diff_to_tree(swap=True)
    else:
        diff = old_tree.diff_to_tree(new_tree)
    out = set()
    for delta in diff.deltas:
        out.add(delta.old_file.path)
        out.add(delta.new_file.path)
    return sorted(out)

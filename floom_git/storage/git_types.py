"""The git vocabulary services and runtime name (commits, trees, signatures, file modes, object
types) and the error pygit2 raises, re-exported so that pygit2 itself is imported only by
storage/, hooks/ and the push policy (tests/test_layering.py)."""

from __future__ import annotations

from pygit2 import Blob, Commit, GitError, Object, Signature, Tree
from pygit2.enums import FileMode, ObjectType

__all__ = ["Blob", "Commit", "FileMode", "GitError", "Object", "ObjectType", "Signature", "Tree",
           "entry_names"]


def entry_names(tree: Tree, *, folders_only: bool = False) -> list[str]:
    """The names of a tree's entries (of its subtrees only, with `folders_only`)."""
    return [str(item.name) for item in tree if not folders_only or isinstance(item, Tree)]

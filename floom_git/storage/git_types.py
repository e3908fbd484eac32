"""The git vocabulary services and runtime name (commits, trees, signatures, file modes, object
types) and the error pygit2 raises, re-exported so that pygit2 itself is imported only by
storage/, hooks/ and the push policy (tests/test_layering.py)."""

from __future__ import annotations

from pygit2 import Commit, GitError, Signature, Tree
from pygit2.enums import FileMode, ObjectType

__all__ = ["Commit", "FileMode", "GitError", "ObjectType", "Signature", "Tree"]

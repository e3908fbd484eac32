"""A libgit2 handle that is freed as soon as nobody uses it.

pygit2's Repository keeps its collections (branches, references, remotes, submodules), each of
which points back at it: a cycle that only Python's cyclic collector frees, at a time of its own.
Until then the handle keeps every pack it ever opened mapped, including packs removed since (a
roll-up, git's repack): their disk space and inodes stay taken, and a removed pack's inode
cannot be written again as a spare (storage/spares.py). Here each collection is made when asked
for, so the handle goes with its last user.
"""

from __future__ import annotations

from typing import Any

import pygit2
from pygit2.branches import Branches
from pygit2.references import References
from pygit2.remotes import RemoteCollection
from pygit2.submodules import SubmoduleCollection


def _made_when_asked(kind: type) -> Any:
    """A collection made anew on each use; pygit2's own set-up assigns it, which is let pass."""
    return property(lambda repo: kind(repo), lambda repo, _value: None)


class Handle(pygit2.Repository):
    """pygit2.Repository without the cycle."""

    branches: Branches = _made_when_asked(Branches)
    references: References = _made_when_asked(References)
    remotes: RemoteCollection = _made_when_asked(RemoteCollection)
    submodules: SubmoduleCollection = _made_when_asked(SubmoduleCollection)

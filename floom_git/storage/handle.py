"""A libgit2 handle that is freed as soon as nobody uses it.

pygit2's Repository keeps its collections (branches, references, remotes, submodules), each of
which points back at it: a cycle that only Python's cyclic collector frees, at a time of its own.
Until then the handle keeps every pack it ever opened mapped, including packs removed since (a
roll-up, git's repack): their disk space and inodes stay taken, and a removed pack's inode
cannot be written again as a spare (storage/spares.py). Here each collection is made when asked
for, so the handle goes with its last user.
"""

from __future__ import annotations

import pygit2
from pygit2.branches import Branches
from pygit2.references import References
from pygit2.remotes import RemoteCollection
from pygit2.submodules import SubmoduleCollection


class Handle(pygit2.Repository):
    """pygit2.Repository without the cycle; pygit2's own set-up assigns the four collections,
    which is let pass."""

    @property
    def references(self) -> References:
        return References(self)

    @references.setter
    def references(self, _: object) -> None:
        pass

    @property
    def branches(self) -> Branches:
        return Branches(self)

    @branches.setter
    def branches(self, _: object) -> None:
        pass

    @property
    def remotes(self) -> RemoteCollection:
        return RemoteCollection(self)

    @remotes.setter
    def remotes(self, _: object) -> None:
        pass

    @property
    def submodules(self) -> SubmoduleCollection:
        return SubmoduleCollection(self)

    @submodules.setter
    def submodules(self, _: object) -> None:
        pass

"""What a commit changes and what it answers: the changeset a write builds (paths to bytes, an
existing tree, or None to delete), its checked and nested form, the result of committing it,
and RefMoved, the one error that means "the branch moved: build again"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pygit2

from floom_git import paths
from floom_git.errors import Conflict, InvalidInput


class RefMoved(Conflict):
    """The branch moved between reading its tip and committing on it: build again on the new
    tip. Only this error means "retry"; a failure to write (a full disk) is never one."""


@dataclass(frozen=True)
class TreeRef:
    """A change value that sets a path to an existing tree (restores a whole folder)."""

    oid: pygit2.Oid


Change = bytes | TreeRef | None  # None deletes the path (file or whole folder)


@dataclass
class Changeset:
    """What one commit changes, its message, and a value handed back to the caller."""

    changes: dict[str, Change]
    message: str
    result: object = None
    # The changes were read from the working tree (an on-disk edit being synced): the commit
    # leaves the files alone and only points the index at them, so an edit made after they
    # were read is never overwritten; it simply stays a difference for the next sync.
    from_disk: bool = False


@dataclass(frozen=True)
class CommitResult:
    sha: str | None  # None when the changeset changed nothing
    paths: tuple[str, ...] = ()
    result: object = None
    files: tuple[str, ...] = field(default=())  # concrete file paths touched
    # Paths where the disk does not hold the commit: an edit a person saved while it was made
    # (left alone, committed on top by the next sync), or a sync that failed and is redone.
    unsynced: tuple[str, ...] = ()
    parent: str | None = None  # the tip the commit was made on
    from_disk: bool = False  # the changeset was an on-disk edit being synced

    @property
    def short(self) -> str | None:
        return self.sha[:7] if self.sha else None


def signature(name: str, email: str) -> pygit2.Signature:
    return pygit2.Signature(name or "floom", email or "floom@floom.local")


REPLACE = object()  # key in a nested change dict: build that folder from empty


def norm(path: str) -> str:
    """Every path entering a commit passes git's own rules (storage/paths.py): nothing that a
    clone would refuse to check out, or that git refuses on push, reaches a branch."""
    path = path.strip("/")
    if not path:
        raise InvalidInput("empty path in changeset")
    return paths.clean_relpath(path)


def admitted(changes: Mapping[str, Change]) -> dict[str, Change]:
    """`changes` with every path through norm, refused (InvalidInput naming the path) when it
    would put a folder where the workspace reads a file or a file where it reads a folder
    (paths.kind_refusal, the rule a push and the disk sync keep too)."""
    out = {norm(p): v for p, v in changes.items()}
    for path, value in out.items():
        if value is None:
            continue  # a deletion leaves nothing of the wrong kind
        why = paths.kind_refusal(path, paths.FOLDER if isinstance(value, TreeRef) else paths.FILE)
        if why:
            raise InvalidInput(why)
    return out


def nest(changes: Mapping[str, Change]) -> dict[str, Any]:
    """{'a/b/c': v} -> {'a': {'b': {'c': v}}}; a folder set or deleted wins over files inside it."""
    root: dict[str, Any] = {}
    for path in sorted(changes, key=lambda p: p.count("/")):
        parts = path.split("/")
        node = root
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):  # a shallower change covers this path
                if nxt is None:  # folder deleted, then files written into it: replace it
                    nxt = node[part] = {REPLACE: True}
                else:
                    break
            node = nxt
        else:
            node[parts[-1]] = changes[path]
    return root

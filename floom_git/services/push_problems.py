"""Why a push is refused, as typed records: what each problem is about (a ref or a path), its
kind, and the line the person pushing reads; and the one place those lines become the text git
shows as `remote: ...`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_LINES = 50  # problems printed to the pushing person
HEADLINE = "push rejected"


class Kind(StrEnum):
    REF = "ref"  # a ref that may not move (namespace, deletion, rewind, stale, not a commit)
    PATH = "path"  # a path the validator every door shares refuses
    SUBMODULE = "submodule"
    SYMLINK = "symlink"
    SECRET = "secret"  # a secret-bearing file name
    TOO_LARGE = "too_large"
    WRONG_KIND = "wrong_kind"  # a folder where the workspace reads a file, or the reverse
    INVALID = "invalid"  # a file the workspace reads does not validate
    UNSYNCED = "unsynced"  # would overwrite on-disk edits the server has not committed
    UNCHECKED = "unchecked"  # the server could not check the push


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a push. Decisions are taken on `where` and `kind`; `line` is only
    for the person pushing (it names `where`, except for UNCHECKED)."""

    where: str  # the ref or the path
    kind: Kind
    line: str

    @classmethod
    def at(cls, where: str, kind: Kind, what: str) -> Problem:
        """The usual line: `<where>: <what>`."""
        return cls(where, kind, f"{where}: {what}")

    def __str__(self) -> str:
        return self.line


def format_rejection(problems: list[Problem]) -> str:
    """The text the hook prints; git shows each line to the pushing person as `remote: ...`."""
    lines = [headline("nothing was changed on the server")]
    lines += [f"  - {p.line}" for p in problems[:MAX_LINES]]
    if len(problems) > MAX_LINES:
        lines.append(f"  ... and {len(problems) - MAX_LINES} more")
    return "\n".join(lines) + "\n"


def headline(why: str) -> str:
    """The first line of every refusal."""
    return f"{HEADLINE}: {why}"


def refused(why: str) -> str:
    """The hook's text refusing the whole push for one reason that is no problem of its
    content."""
    return headline(why) + "\n"

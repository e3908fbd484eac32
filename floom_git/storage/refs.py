"""Moving a branch by compare-and-swap, the way git does: take `<ref>.lock`, check that the
branch still points where the commit was built, rename the lock over the ref, append the
reflog lines (the branch's, and HEAD's when HEAD names the branch).

libgit2 does the same inside create_commit. Here the lock file is allocated before it is written
(storage/lockfile.py), and the commit object is known to be stored before any ref names it.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pygit2
from pygit2.enums import ReferenceType

from floom_git.storage import lockfile, spares
from floom_git.storage.changeset import RefMoved

ZERO = "0" * 40
_PARAGRAPH_END = re.compile(r"\n[^\S\n]*(?:\n|$)")  # a line break, then a blank line or the end
_SPACE = re.compile(r"\s+")


def target(repo: pygit2.Repository, ref: str) -> str | None:
    """Where `ref` points now, read from the repository (None: no such branch)."""
    try:
        return str(repo.references[ref].resolve().target)
    except (KeyError, pygit2.GitError, OSError):
        return None


def move(repo: pygit2.Repository, ref: str, old: str | None, new: str, who: pygit2.Signature,
         message: str) -> None:
    """Point `ref` at `new` if it still points at `old` (None: the branch does not exist yet),
    else raise RefMoved. OSError when its lock is held (a person's git) or the disk refuses."""
    move_chain(repo, ref, old, [(new, who, message)])


def move_chain(repo: pygit2.Repository, ref: str, old: str | None,
               steps: list[tuple[str, pygit2.Signature, str]]) -> None:
    """Like move() for a chain of commits made on `ref` one after the other, each step (commit,
    who, reflog message) a child of the one before: the ref moves once, to the last, and the
    reflog gets one line per step, as if it had moved once per commit."""
    if not ref.startswith("refs/heads/"):
        raise ValueError(f"{ref}: only a branch is moved here")  # never HEAD, a symbolic ref
    git_dir = Path(repo.path)
    path = git_dir / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    # LockHeld, an OSError: a person's git holds it
    data = f"{steps[-1][0]}\n".encode()
    with lockfile.replacing(path, spares=spares.of(git_dir), size=len(data)) as fd:
        lockfile.put(fd, data)
        if target(repo, ref) != old:
            raise RefMoved(f"branch {ref} moved while committing; retry")
    lines = []
    for new, who, message in steps:
        lines.append(_log_line(old, new, who, message))
        old = new
    line = b"".join(lines)
    for name in _logs(repo, git_dir, ref):
        _append(os.path.join(repo.path, "logs", name), line)


def commit_message(message: str, *, initial: bool) -> str:
    """The reflog message libgit2 writes for a commit: `commit: ` and the message's summary
    (leading line breaks skipped, the first paragraph, each whitespace run that holds a line
    break squashed to one space, trailing whitespace dropped)."""
    text = message.lstrip("\n")
    end = _PARAGRAPH_END.search(text)
    first = text[:end.start()] if end else text
    summary = _SPACE.sub(lambda m: " " if "\n" in m.group() else m.group(), first).rstrip()
    return f"commit (initial): {summary}" if initial else f"commit: {summary}"


def _logs(repo: pygit2.Repository, git_dir: Path, ref: str) -> list[str]:
    """The reflogs a move of `ref` goes to: its own (a branch of a non-bare repository unless
    core.logAllRefUpdates says no, or any ref whose log exists) and HEAD's when HEAD names it."""
    try:
        logged = repo.config.get_bool("core.logAllRefUpdates")
    except (KeyError, pygit2.GitError, ValueError):
        logged = not repo.is_bare
    names = []
    if (logged and ref.startswith("refs/heads/")) or (git_dir / "logs" / ref).exists():
        names.append(ref)
    with contextlib.suppress(KeyError, pygit2.GitError):
        head = repo.references["HEAD"]
        if head.type == ReferenceType.SYMBOLIC and head.target == ref:
            names.append("HEAD")
    return names


def _append(path: str, line: bytes) -> None:
    """Append to a reflog, making it and its folders when missing."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        out = os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        out = os.open(path, flags, 0o644)
    try:
        os.write(out, line)
    finally:
        os.close(out)


def _log_line(old: str | None, new: str, who: pygit2.Signature, message: str) -> bytes:
    sign = "-" if who.offset < 0 else "+"
    offset = f"{sign}{abs(who.offset) // 60:02d}{abs(who.offset) % 60:02d}"
    text = message.replace("\n", " ")
    return (f"{old or ZERO} {new} {who.name} <{who.email}> {who.time} {offset}\t{text}\n"
            .encode("utf-8", "surrogateescape"))

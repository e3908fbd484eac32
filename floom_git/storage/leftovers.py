"""What a process killed mid-write leaves in a repository's .git, and its removal at start-up:
stale lock files, half-written temporary objects and packs, the quarantine of an unfinished
push."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("floom_git.storage")

# git never removes a lock file by itself, and a stale index.lock or refs/heads/main.lock would
# refuse every later write (and the start-up sync of the working tree).
LOCKS = ("index.lock", "HEAD.lock", "packed-refs.lock", "config.lock",
         "objects/info/commit-graph.lock", "objects/info/commit-graphs/commit-graph-chain.lock")


def clear(git_dir: Path, temp_prefix: str) -> list[str]:
    """Remove crash leftovers from `git_dir`; returns them (relative to it).

    Only while nothing else writes the repository: the server's writes and pushes run under its
    writer lock, and none has started yet at start-up. A lock file holds no data (the file it
    guards is intact), a temporary object was never referenced, and a quarantined push was never
    accepted. `temp_prefix` names the server's own temporary files (a journal write cut short).
    """
    found = [git_dir / name for name in LOCKS]
    found += (git_dir / "refs").rglob("*.lock")
    found += git_dir.glob("objects/??/tmp_obj*")  # libgit2's tmp_object_git2_*, git's tmp_obj_*
    found += git_dir.glob("objects/incoming-*")  # receive-pack's quarantine (git < 2.27)
    found += git_dir.glob("objects/tmp_objdir-incoming-*")  # and since
    found += git_dir.glob(temp_prefix + "*")
    pack = git_dir / "objects" / "pack"
    found += pack.glob(temp_prefix + "*")  # a pack named the long way (storage/packs.py)
    found += pack.glob("tmp_*")  # git's tmp_pack_*, tmp_idx_*
    # A pack whose index was never written was never read, nor named by any ref.
    found += [p for p in pack.glob("pack-*.pack") if not p.with_suffix(".idx").exists()]
    removed = []
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path.relative_to(git_dir).as_posix())
    if removed:
        log.warning("%s: removed what an interrupted write left behind: %s", git_dir,
                    ", ".join(removed[:20]) + (" ..." if len(removed) > 20 else ""))
    return removed


def remove_temp_files(root: Path, files: list[str], temp_prefix: str,
                      tracked: Callable[[str], bool]) -> None:
    """Delete the untracked temporary files (`temp_prefix`*) a working-tree sync of `files`
    may have left beside them when killed, then the folders that left empty."""
    for folder in sorted({(root / f).parent for f in files}):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for tmp in folder.glob(temp_prefix + "*"):
            rel = tmp.relative_to(root).as_posix()
            if tmp.is_file() and not tmp.is_symlink() and not tracked(rel):
                tmp.unlink(missing_ok=True)
        _prune_dirs(folder, root)


def _prune_dirs(folder: Path, root: Path) -> None:
    """Remove now-empty folders from `folder` up to (not including) `root`."""
    root = root.resolve()
    folder = folder.resolve() if folder.exists() else folder
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

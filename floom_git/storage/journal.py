"""The sync journal (.git/floom-sync.json): written before main moves, emptied once the working
tree and index follow. A journal that holds a record is pending: recovery finishes that sync.

It is rewritten in place and cleared by emptying it, not created and removed per write (a file
created and deleted on every API write cost ~0.3 ms). A record up to one page is written by one
write(2) into the page cache: a killed process leaves it whole or not yet written (main has not
moved then). A longer record (a commit naming thousands of files) is replaced atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from floom_git.storage.atomic import atomic_write

NAME = "floom-sync.json"
IN_PLACE_MAX = 4096  # one page: written whole by one write(2)


def pending(git_dir: Path) -> bool:
    """A sync was started and not finished (the journal holds a record)."""
    try:
        return os.stat(git_dir / NAME).st_size > 0
    except FileNotFoundError:
        return False


def write(git_dir: Path, record: dict[str, Any]) -> None:
    data = json.dumps(record).encode()
    path = git_dir / NAME
    if len(data) > IN_PLACE_MAX:
        atomic_write(path, data, mode=0o644, durable=False)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"{path}: short write")
    finally:
        os.close(fd)


def read(git_dir: Path) -> dict[str, Any] | None:
    """The pending record; None when nothing is pending; {} for one that cannot be read."""
    try:
        text = (git_dir / NAME).read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {}
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def clear(git_dir: Path) -> None:
    try:
        os.truncate(git_dir / NAME, 0)
    except FileNotFoundError:
        pass

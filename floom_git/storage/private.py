"""Server-private JSON files in system/ (secrets, webhook digests, share links, alerts, schedule
state): read tolerantly, written atomically and durably (tmp + fsync + rename), mode 0600."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from floom_git.storage.atomic import atomic_write


def read_json(path: Path) -> dict[str, Any]:
    """The object stored at `path`; {} when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON; a crash leaves the old file or the new one."""
    write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def write_bytes(path: Path, payload: bytes) -> None:
    atomic_write(path, payload, mode=0o600, durable=True)

"""Stars: which workers each person starred, per workspace. A star is one person's bookmark,
not workspace content (a clone must not carry everyone's stars), so it lives in
system/stars/<workspace uid>.json as {user_id: [worker ids]}, keyed by the workspace's internal
id."""

from __future__ import annotations

import threading
from pathlib import Path

from floom_git.storage import private


class StarStore:
    def __init__(self, system_dir: Path) -> None:
        self._dir = system_dir / "stars"
        self._lock = threading.Lock()

    def _path(self, ws_id: str) -> Path:
        return self._dir / f"{ws_id}.json"

    def of(self, ws_id: str, user_id: str) -> frozenset[str]:
        ids = private.read_json(self._path(ws_id)).get(user_id, [])
        return (
            frozenset(i for i in ids if isinstance(i, str))
            if isinstance(ids, list)
            else frozenset()
        )

    def set(self, ws_id: str, user_id: str, worker_id: str, starred: bool) -> None:
        with self._lock:
            data = private.read_json(self._path(ws_id))
            mine = set(self.of(ws_id, user_id))
            mine = mine | {worker_id} if starred else mine - {worker_id}
            data[user_id] = sorted(mine)
            if not mine:
                data.pop(user_id)
            private.write_json(self._path(ws_id), data)

    def forget_worker(self, ws_id: str, worker_id: str) -> None:
        """Drop a deleted worker from everyone's stars (a new worker of that id starts
        unstarred)."""
        with self._lock:
            data = private.read_json(self._path(ws_id))
            changed = {u: [i for i in ids if i != worker_id] for u, ids in data.items()
                       if isinstance(ids, list) and worker_id in ids}
            if changed:
                data.update({u: ids for u, ids in changed.items()})
                private.write_json(self._path(ws_id), {u: ids for u, ids in data.items() if ids})

    def drop(self, ws_id: str) -> None:
        """Forget every star of a deleted workspace."""
        with self._lock:
            self._path(ws_id).unlink(missing_ok=True)

"""A small read cache in front of the identity store, so the per-request lookups of a token, its
user and a role cost a dict access instead of SQLite queries. Entries live a few seconds and are
dropped whenever this process writes to the store, so an in-process revoke or role change is
seen at once; a change made by another process (the CLI) is seen within `seconds`."""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

from floom_git.storage.system_store import SystemStore

SECONDS = 5.0
SIZE = 4096
V = TypeVar("V")


class ReadCache(Generic[V]):
    def __init__(self, store: SystemStore, seconds: float = SECONDS, size: int = SIZE) -> None:
        self._store = store
        self._seconds = seconds
        self._size = size
        self._entries: dict[Hashable, tuple[V, int, float]] = {}

    def get(self, key: Hashable) -> V | None:
        """The cached value, or None when absent, stale or invalidated by a write."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, generation, until = entry
        if generation != self._store.generation or until < time.monotonic():
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: Hashable, value: V) -> V:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (value, self._store.generation, time.monotonic() + self._seconds)
        return value

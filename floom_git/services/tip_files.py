"""A registry file of the workspace (connections, MCP tools) as it is at the tip of main, parsed
once per blob: an invalid one is a Conflict naming what to fix, since people edit it too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from floom_git.errors import Conflict, InvalidInput
from floom_git.storage.git_types import Blob
from floom_git.storage.repo import WorkspaceRepo

T = TypeVar("T")
CACHE_SIZE = 1024


class TipFile(Generic[T]):
    def __init__(self, path: str, parse: Callable[[bytes], T], empty: Callable[[], T]) -> None:
        self.path = path
        self._parse = parse
        self._empty = empty
        self._parsed: dict[str, T] = {}  # blob id -> parsed file (blobs never change)

    def read(self, repo: WorkspaceRepo) -> T:
        blob = repo.entry(repo.tip(), self.path)
        if not isinstance(blob, Blob):  # none (or a folder of that name: validated on push)
            return self._empty()
        key = str(blob.id)
        if key not in self._parsed:
            try:
                parsed = self._parse(blob.data)
            except InvalidInput as exc:
                raise Conflict(f"{exc.message} (fix the file, or push a corrected one)") from None
            if len(self._parsed) > CACHE_SIZE:
                self._parsed.clear()
            self._parsed[key] = parsed
        return self._parsed[key]

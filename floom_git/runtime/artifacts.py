"""Which files a finished run leaves as artifacts: regular files under `out/` only, none named like
a credential or a runner file, none over the size limit, and none holding a secret of the run:
such a file is not copied (so never committed) and the record lists it as withheld."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from collections.abc import Callable
from pathlib import Path

from floom_git import paths
from floom_git.errors import InvalidInput
from floom_git.runtime.redaction import Redactor
from floom_git.schemas.run import Artifact
from floom_git.services.runs import iso, now

OUT = "out"
MAX_ARTIFACTS = 1000
RUNNER_FILES = frozenset({"inputs.json", "result.json", "secrets.json", "connections.json"})
LogFn = Callable[[str, str], None]


def _candidates(workdir: Path) -> list[str]:
    """Paths (relative to `workdir`) of everything under out/, without following symlinks."""
    out = workdir / OUT
    if out.is_symlink() or not out.is_dir():
        return []
    found: list[str] = []
    todo = [out]
    while todo:
        folder = todo.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                todo.append(Path(entry.path))
            else:
                found.append(Path(entry.path).relative_to(workdir).as_posix())
    return sorted(found)


def _read(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    finally:
        os.close(fd)


def _artifact(rel: str, size: int, withheld: str | None = None) -> Artifact:
    return Artifact(id="art_" + hashlib.sha256(rel.encode()).hexdigest()[:12], name=Path(rel).name,
                    path=rel, size_bytes=size,
                    media_type=mimetypes.guess_type(rel)[0] or "application/octet-stream",
                    created_at=iso(now()), artifact_withheld=withheld)


def collect(workdir: Path, dest: Path, redactor: Redactor, max_bytes: int,
            log: LogFn) -> list[Artifact]:
    """Copy the safe files of `workdir/out` to `dest` (same relative paths) and describe every
    artifact, withheld ones included. Call only once the run's processes are gone."""
    artifacts: list[Artifact] = []
    total = 0
    for rel in _candidates(workdir):
        if len(artifacts) >= MAX_ARTIFACTS:
            log("warning", f"Artifacts after the first {MAX_ARTIFACTS} skipped")
            break
        src = workdir / rel
        try:
            paths.clean_relpath(rel)
        except InvalidInput:
            log("warning", f"Artifact {rel[:200]!r} skipped: not a path git can store")
            continue
        info = src.lstat()
        if not stat.S_ISREG(info.st_mode):
            log("warning", f"Artifact {rel} skipped: not a regular file")
            continue
        if paths.is_secret_file(rel) or Path(rel).name in RUNNER_FILES:
            log("warning", f"Artifact {rel} skipped: the name of a credential or runner file")
            continue
        if info.st_size > max_bytes or total + info.st_size > max_bytes:
            log("warning", f"Artifact {rel} withheld: artifacts may hold {max_bytes} bytes in all")
            artifacts.append(_artifact(rel, info.st_size, "too_large"))
            continue
        try:
            data = _read(src, max_bytes - total)
        except OSError as exc:
            log("warning", f"Artifact {rel} skipped: {exc.strerror or exc}")
            continue
        if len(data) > max_bytes - total:  # grew after the size check
            artifacts.append(_artifact(rel, len(data), "too_large"))
            continue
        holder = redactor.holder(data)
        if holder is not None:
            log("warning", f"Artifact {rel} withheld: it holds the value of secret {holder}")
            artifacts.append(_artifact(rel, len(data), "secret"))
            continue
        total += len(data)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        artifacts.append(_artifact(rel, len(data)))
    return artifacts

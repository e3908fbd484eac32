"""A worker folder on the person's disk: which files a push sends (caches, virtualenvs and
secret-bearing files stay home), local validation against the manifest schema, and writing a
pulled bundle back into a folder without ever leaving it."""

from __future__ import annotations

import base64
import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from floom_git.client.errors import ClientError
from floom_git.errors import FloomError
from floom_git.schemas.manifest import Manifest, parse_manifest

MANIFEST = "worker.yml"
SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache"}
SKIP_FILES = {".DS_Store"}
# The workspace's .gitignore keeps these out of the repository; the server refuses them.
SECRET_FILE = re.compile(r"(^|/)(\.env(\..*)?|[^/]*\.env|[^/]*\.pem|[^/]*\.key)$", re.IGNORECASE)


@dataclass
class LocalWorker:
    root: Path
    files: dict[str, bytes]
    skipped: list[str] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def worker_id(self) -> str:
        assert self.manifest is not None
        return self.manifest.name

    def file_bodies(self) -> list[dict[str, str]]:
        """The files as the API's FileIn list: UTF-8 text as is, anything else base64."""
        out = []
        for path, data in sorted(self.files.items()):
            try:
                out.append({"path": path, "content": data.decode("utf-8")})
            except UnicodeDecodeError:
                out.append({"path": path, "content": base64.b64encode(data).decode("ascii"),
                            "encoding": "base64"})
        return out


def _ignored(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return (any(p in SKIP_DIRS for p in parts[:-1]) or parts[-1] in SKIP_FILES
            or rel.endswith((".pyc", ".pyo")))


def read(root: Path) -> LocalWorker:
    """The files a push would send from `root`; ClientError when it is not a folder."""
    if not root.is_dir():
        raise ClientError(f"{root}: not a folder")
    files: dict[str, bytes] = {}
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if _ignored(rel) or full.is_symlink():
                continue
            if SECRET_FILE.search(rel):
                skipped.append(rel)
                continue
            files[rel] = full.read_bytes()
    return LocalWorker(root=root, files=files, skipped=skipped)


def validate(worker: LocalWorker) -> Manifest:
    """Check the folder as the server will: a valid worker.yml and its entry file present."""
    where = str(worker.root / MANIFEST)
    if MANIFEST not in worker.files:
        raise ClientError(f"{where}: file is missing (a worker folder needs worker.yml)")
    try:
        manifest = parse_manifest(worker.files[MANIFEST], where=where)
    except FloomError as exc:
        raise ClientError(exc.message) from None
    if manifest.entry not in worker.files:
        raise ClientError(f"{where}: entry file '{manifest.entry}' is missing from the folder "
                          "- at `$.exec.entry`")
    worker.manifest = manifest
    return manifest


def bundle_files(data: bytes, worker_id: str) -> dict[str, bytes]:
    """The files of a worker bundle (`<id>/<path>` entries); refuses paths that would escape."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ClientError("the server sent a bundle that is not a ZIP file") from None
    out: dict[str, bytes] = {}
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = PurePosixPath(info.filename)
            if name.parts[:1] != (worker_id,) or len(name.parts) < 2 or ".." in name.parts \
                    or name.is_absolute() or "\\" in info.filename:
                raise ClientError(f"bundle entry '{info.filename}' is outside {worker_id}/")
            out[PurePosixPath(*name.parts[1:]).as_posix()] = archive.read(info)
    return out


def write(root: Path, files: dict[str, bytes]) -> list[str]:
    """Make `root` hold exactly `files` as a push would see it: write them, and delete the local
    files a push would send that are not among them. Returns the deleted paths."""
    root.mkdir(parents=True, exist_ok=True)
    base = root.resolve()
    for rel, data in files.items():
        target = (root / rel).resolve()
        if base not in target.parents:
            raise ClientError(f"{rel}: would be written outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.floom-pull")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    removed = sorted(set(read(root).files) - set(files))
    for rel in removed:
        (root / rel).unlink()
    return removed


def differs(root: Path, files: dict[str, bytes]) -> list[str]:
    """Local files a pull would overwrite or delete that differ from `files`."""
    if not root.exists():
        return []
    local = read(root).files
    return sorted(p for p in set(local) | set(files) if p in local and local[p] != files.get(p))

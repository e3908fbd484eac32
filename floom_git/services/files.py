"""File payloads in and out of the API: decoding FileIn bodies, text/binary detection, types."""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Iterable

from floom_git import paths
from floom_git.errors import InvalidInput, PayloadTooLarge
from floom_git.schemas.api import FileIn, FileOut

TEXT_TYPES = {"application/json", "application/yaml", "application/x-yaml", "application/xml",
              "application/javascript", "application/toml", "application/x-sh"}
EXTRA_TYPES = {
    ".md": "text/markdown",
    ".yml": "application/yaml",
    ".yaml": "application/yaml",
    ".toml": "application/toml",
    ".ndjson": "application/x-ndjson",
    ".py": "text/x-python",
}


def decode_files(
    files: Iterable[FileIn], max_bytes: int, *, field: str = "files"
) -> dict[str, bytes]:
    """FileIn list -> {path: bytes}; InvalidInput on bad paths, duplicates or bad base64."""
    out: dict[str, bytes] = {}
    total = 0
    for i, f in enumerate(files):
        where = f"{field}[{i}].path"
        path = paths.clean_relpath(f.path, field=where)
        if path in out:
            raise InvalidInput(f"{where}: '{path}' is listed twice")
        if paths.is_secret_file(path):
            raise InvalidInput(f"{where}: '{path}' looks like a secret-bearing file; use secrets")
        data = decode_content(f.content, f.encoding, where=f"{field}[{i}].content")
        total += len(data)
        if total > max_bytes:
            raise PayloadTooLarge(f"{field}: files add up to more than {max_bytes} bytes")
        out[path] = data
    return out


def decode_content(content: str, encoding: str, *, where: str = "content") -> bytes:
    """A file's bytes from a JSON body: base64 (validated) or the text as UTF-8."""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{where}: not valid base64") from None
    return content.encode("utf-8", errors="surrogatepass")


def content_type(path: str) -> str:
    for suffix, kind in EXTRA_TYPES.items():
        if path.endswith(suffix):
            return kind
    guess, _ = mimetypes.guess_type(path)
    return guess or "application/octet-stream"


def is_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def file_out(path: str, data: bytes, *, with_content: bool = True) -> FileOut:
    text = is_text(data)
    if not with_content:
        return FileOut(path=path, size=len(data), binary=not text, content_type=content_type(path))
    if text:
        return FileOut(path=path, size=len(data), binary=False, content=data.decode("utf-8"),
                       encoding="utf-8", content_type=content_type(path))
    return FileOut(path=path, size=len(data), binary=True,
                   content=base64.b64encode(data).decode("ascii"), encoding="base64",
                   content_type=content_type(path))

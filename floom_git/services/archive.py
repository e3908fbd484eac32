"""Reading untrusted ZIP uploads safely: names, entry types, counts and sizes are checked, and
entries are decompressed against a byte budget (headers are never trusted), so zip-slip paths,
symlinks and zip bombs are refused before anything is written."""

from __future__ import annotations

import io
import stat
import zipfile

from floom_git import paths
from floom_git.errors import InvalidInput, PayloadTooLarge

CHUNK = 64 * 1024
# Past this many bytes an entry must not expand more than MAX_RATIO times its compressed size:
# text compresses 3-10x, a bomb 1000x.
RATIO_FLOOR = 1024 * 1024
MAX_RATIO = 200


def read_zip(
    data: bytes, *, max_entries: int, max_total: int, field: str = "bundle"
) -> dict[str, bytes]:
    """Every file of a ZIP archive as {relative path: bytes}; directory entries are dropped.

    Raises InvalidInput for a non-ZIP, unsafe names (absolute, '..', backslash, .git),
    duplicates, symlinks or other special entries, encrypted or corrupt entries; and
    PayloadTooLarge for too many entries, more than `max_total` bytes uncompressed, or an
    entry that expands suspiciously far.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise InvalidInput(f"{field}: not a ZIP archive") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise PayloadTooLarge(
                f"{field}: {len(infos)} entries; at most {max_entries} are allowed"
            )
        declared = sum(max(info.file_size, 0) for info in infos)
        if declared > max_total:
            raise PayloadTooLarge(f"{field}: expands to more than {max_total} bytes")
        out: dict[str, bytes] = {}
        budget = max_total
        for info in infos:
            name = _check_entry(info, field)
            if name is None:
                continue
            if name in out:
                raise InvalidInput(f"{field}: '{name}' appears twice")
            out[name] = _read_entry(zf, info, name, budget, field)
            budget -= len(out[name])
    return out


def _check_entry(info: zipfile.ZipInfo, field: str) -> str | None:
    """The entry's clean path, or None for a directory entry."""
    raw = info.filename
    shown = raw[:80].encode("unicode_escape").decode("ascii")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InvalidInput(f"{field}: '{shown}' is a symbolic link; links are not allowed")
    kind = stat.S_IFMT(mode)  # 0 when the archiver stored permission bits only
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise InvalidInput(f"{field}: '{shown}' is not a regular file")
    if info.flag_bits & 0x1:
        raise InvalidInput(f"{field}: '{shown}' is encrypted")
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise InvalidInput(f"{field}: '{shown}' is an absolute path")
    if info.is_dir():
        name = raw.rstrip("/")
        if name:
            paths.clean_relpath(name, field=f"{field} entry")
        return None
    return paths.clean_relpath(raw, field=f"{field} entry")


def _read_entry(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: int, field: str
) -> bytes:
    limit = max(RATIO_FLOOR, info.compress_size * MAX_RATIO)
    chunks = []
    size = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                if size > budget:
                    raise PayloadTooLarge(f"{field}: expands to more than the allowed total size")
                if size > limit:
                    raise PayloadTooLarge(
                        f"{field}: '{name}' expands more than {MAX_RATIO}x (a zip bomb?)")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError,
            EOFError) as exc:
        raise InvalidInput(f"{field}: '{name}' cannot be read ({exc})") from None
    except RuntimeError as exc:  # zipfile raises it for encrypted entries
        raise InvalidInput(f"{field}: '{name}' cannot be read ({exc})") from None
    return b"".join(chunks)

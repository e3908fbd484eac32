"""`list_files` and `read_file`: the agent's read-only view of the contexts its worker mounts,
addressed as `context/<name>/<path>` like a script's run directory. Symlinks and paths that leave
a context are refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec

from floom_git.agents.tools import Tool, ToolError, struct_tool

MAX_LISTED = 2000
READ_CHUNK = 100_000  # characters a read returns at most; the model pages with `offset`


class ListArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    prefix: Annotated[str, msgspec.Meta(
        description="Only paths starting with this, e.g. `context/company/`")] = "context/"


class ReadArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    path: Annotated[str, msgspec.Meta(description="A path from list_files, e.g. "
                                                  "`context/company/about.md`")]
    offset: Annotated[int, msgspec.Meta(ge=0, description="Character to start at")] = 0


def context_tools(mounts: Mapping[str, Path]) -> list[Tool]:
    """The two tools over `mounts` (context name -> its directory on disk)."""
    roots = {name: Path(root).resolve() for name, root in mounts.items()}

    async def list_files(args: ListArgs) -> dict[str, object]:
        files = await asyncio.to_thread(_walk, roots, args.prefix)
        listed = files[:MAX_LISTED]
        return {"files": listed, "truncated": len(files) > len(listed)}

    async def read_file(args: ReadArgs) -> dict[str, object]:
        return await asyncio.to_thread(_read, roots, args.path, args.offset)

    names = ", ".join(f"context/{n}/" for n in sorted(roots)) or "none"
    return [
        struct_tool("list_files", f"List the files of the mounted contexts ({names}) with their "
                    "sizes in bytes.", ListArgs, list_files),
        struct_tool("read_file", "Read a text file of a mounted context. Long files come in "
                    f"pages of {READ_CHUNK} characters: pass `offset` to read on.", ReadArgs,
                    read_file),
    ]


def _walk(roots: Mapping[str, Path], prefix: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in sorted(roots):
        root = roots[name]
        for here, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".git"))
            for fname in sorted(files):
                full = Path(here, fname)
                if full.is_symlink() or not full.is_file():
                    continue
                virtual = f"context/{name}/{full.relative_to(root).as_posix()}"
                if virtual.startswith(prefix):
                    out.append({"path": virtual, "size": full.stat().st_size})
    return sorted(out, key=lambda f: str(f["path"]))


def _resolve(roots: Mapping[str, Path], virtual: str) -> Path:
    parts = virtual.strip().removeprefix("./").split("/")
    if len(parts) < 3 or parts[0] != "context" or parts[1] not in roots:
        mounted = ", ".join(f"context/{n}/" for n in sorted(roots)) or "no contexts"
        raise ToolError(f"{virtual}: not in a mounted context (mounted: {mounted})")
    root = roots[parts[1]]
    rel = "/".join(parts[2:])
    if any(p in ("", ".", "..") for p in parts[2:]):
        raise ToolError(f"{virtual}: use a plain path without '.', '..' or '//'")
    path = root / rel
    if not path.exists():
        raise ToolError(f"{virtual}: no such file")
    # Every component must be a real directory or file inside the root: no symlink escapes.
    probe = root
    for part in parts[2:]:
        probe = probe / part
        if probe.is_symlink():
            raise ToolError(f"{virtual}: symbolic links are not readable")
    if path.is_dir():
        raise ToolError(f"{virtual}: is a directory (use list_files)")
    return path


def _read(roots: Mapping[str, Path], virtual: str, offset: int) -> dict[str, object]:
    path = _resolve(roots, virtual)
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{virtual}: binary file ({len(data)} bytes), not readable as text")
    text = data.decode("utf-8", errors="replace")
    page = text[offset:offset + READ_CHUNK]
    result: dict[str, object] = {"path": virtual, "content": page}
    if offset + len(page) < len(text):
        result["next_offset"] = offset + len(page)
        result["total_chars"] = len(text)
    return result

"""Workspace export (a ZIP bundle, admin) and import (multipart field `bundle`, or a raw
application/zip body)."""

from __future__ import annotations

from aiohttp import MultipartReader, web

from floom_git.errors import InvalidInput, PayloadTooLarge
from floom_git.http import content, wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.services import export


async def export_bundle(request: web.Request) -> web.Response:
    data = await export.export_zip(workspace(request))
    return content.user_file(data, "application/zip", export.BUNDLE_NAME)


async def _read_bundle(request: web.Request, limit: int) -> bytes:
    if request.content_type in ("application/zip", "application/octet-stream"):
        return await wire.read_body(request, limit)
    if not request.content_type.startswith("multipart/"):
        raise InvalidInput("Content-Type must be multipart/form-data with a `bundle` file field")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"bundle: larger than {limit} bytes")
    reader = await wire.multipart(request)
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader) or part.name != "bundle":
            continue
        chunks, size = [], 0
        while chunk := await part.read_chunk(65536):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"bundle: larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    raise InvalidInput("bundle: the multipart field `bundle` (a ZIP file) is missing")


async def import_bundle(request: web.Request) -> web.Response:
    cfg = settings(request)
    data = await _read_bundle(request, cfg.max_upload_bytes)
    result = await export.import_bundle(
        workspace(request), actor(request), data, max_entries=cfg.import_max_entries,
        max_total=cfg.import_max_bytes, max_file_bytes=cfg.max_file_bytes,
    )
    return wire.json(result)

"""Context pack routes: packs, files (raw or JSON bodies), multipart upload, history."""

from __future__ import annotations

from aiohttp import MultipartReader, web

from floom_git.errors import InvalidInput, PayloadTooLarge
from floom_git.http import content, wire
from floom_git.http.handlers.common import actor, settings, workspace
from floom_git.schemas.api import ContextCreate, ContextFileIn, ContextSensitive, ContextVisibility
from floom_git.services import contexts

FILE_TYPES = ("application/octet-stream", "application/json")  # raw unless JSON is asked for


async def list_contexts(request: web.Request) -> web.Response:
    items = await contexts.list_contexts(workspace(request))
    return wire.json(items, headers={"X-Total-Count": str(len(items))})


async def create_context(request: web.Request) -> web.Response:
    body = await wire.decode_optional(request, ContextCreate, 64 * 1024)
    result = await contexts.create(workspace(request), actor(request), request.match_info["name"],
                                   body)
    return wire.json(result, 201)


async def get_context(request: web.Request) -> web.Response:
    prefix = request.query.get("path_prefix")
    result = await contexts.detail(workspace(request), request.match_info["name"], prefix)
    return wire.json(result)


async def delete_context(request: web.Request) -> web.Response:
    return wire.json(await contexts.delete(workspace(request), actor(request),
                                           request.match_info["name"]))


async def read_file(request: web.Request) -> web.Response:
    """Raw bytes, or {path, content, is_binary, encoding, size} for Accept: application/json."""
    path = wire.path_param(request, "path")
    data, ctype = await contexts.read_file(workspace(request), request.match_info["name"], path)
    if wire.negotiate(request, FILE_TYPES) == "application/json":
        return wire.json(contexts.file_json(path, data, ctype))
    textual = ctype.startswith("text/") or ctype in ("application/json", "application/yaml")
    return content.user_file(data, ctype, path, charset="utf-8" if textual else None)


async def put_file(request: web.Request) -> web.Response:
    """Raw body = file bytes; `Content-Type: application/json` = {content, encoding?}."""
    cfg = settings(request)
    raw = await wire.read_body(request, cfg.max_file_bytes * 2)
    if request.content_type == "application/json":
        try:
            body = wire.decode_bytes(raw, ContextFileIn)
        except InvalidInput as exc:
            raise InvalidInput(f"{exc.message} (a JSON body must be {{content, encoding?}}; send "
                               "another Content-Type to store the bytes as they are)") from None
        data = contexts.body_bytes(body)
    else:
        data = raw
    result = await contexts.put_file(
        workspace(request),
        actor(request),
        request.match_info["name"],
        wire.path_param(request, "path"),
        data,
        cfg.max_file_bytes,
    )
    return wire.json(result)


async def delete_file(request: web.Request) -> web.Response:
    result = await contexts.delete_file(
        workspace(request),
        actor(request),
        request.match_info["name"],
        wire.path_param(request, "path"),
    )
    return wire.json(result)


async def upload(request: web.Request) -> web.Response:
    """multipart/form-data: file parts (their filename is the path), optional `path_prefix` and
    `create_if_missing` fields. All files land in one commit (services/contexts.py: the rules)."""
    cfg = settings(request)
    if not request.content_type.startswith("multipart/"):
        raise InvalidInput("Content-Type must be multipart/form-data")
    if request.content_length is not None and request.content_length > cfg.max_upload_bytes:
        raise PayloadTooLarge(f"upload is larger than {cfg.max_upload_bytes} bytes")
    reader = await wire.multipart(request)
    parts: list[tuple[str, bytes]] = []
    fields: dict[str, str] = {}
    total = 0
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise InvalidInput("nested multipart bodies are not supported")
        if part.filename is None:
            value = (await part.read(decode=True))[:4096].decode("utf-8", errors="replace")
            fields[part.name or ""] = value
            continue
        chunks = []
        while chunk := await part.read_chunk(65536):
            total += len(chunk)
            if total > cfg.max_upload_bytes:
                raise PayloadTooLarge(f"upload is larger than {cfg.max_upload_bytes} bytes")
            chunks.append(chunk)
        parts.append((part.filename, b"".join(chunks)))
    result = await contexts.upload(workspace(request), actor(request), request.match_info["name"],
                                   contexts.Upload(parts, fields), cfg.max_upload_bytes,
                                   cfg.max_archive_entries)
    return wire.json(result, 201)


async def set_visibility(request: web.Request) -> web.Response:
    body = await wire.decode(request, ContextVisibility, 4096)
    result = await contexts.set_meta(workspace(request), actor(request),
                                     request.match_info["name"], "visibility", body.visibility)
    return wire.json(result)


async def set_sensitive(request: web.Request) -> web.Response:
    body = await wire.decode(request, ContextSensitive, 4096)
    result = await contexts.set_meta(workspace(request), actor(request), request.match_info["name"],
                                     "sensitive", body.sensitive or None)
    return wire.json(result)


async def list_versions(request: web.Request) -> web.Response:
    items = await contexts.versions(workspace(request), request.match_info["name"],
                                    wire.q_limit(request, 50, 500),
                                    wire.q_int(request, "offset", 0, 0))
    return wire.json(items)


async def version_files(request: web.Request) -> web.Response:
    result = await contexts.version_files(workspace(request), request.match_info["name"],
                                          request.match_info["sha"])
    return wire.json(result)


async def rollback(request: web.Request) -> web.Response:
    result = await contexts.rollback(workspace(request), actor(request),
                                     request.match_info["name"], request.match_info["sha"])
    return wire.json(result)

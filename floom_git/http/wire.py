"""Request decoding and response encoding shared by handlers: bounded bodies, msgspec decoding
with `$.path` messages, query parameters with bounds, JSON responses."""

from __future__ import annotations

import json as _json
import re
import urllib.parse
from typing import Any, TypeVar

import msgspec
from aiohttp import MultipartReader, web

from floom_git.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from floom_git.http.keys import GIVEN_BODY
from floom_git.schemas.patterns import explain

T = TypeVar("T")
MAX_INT = 10**9
# JSON a caller in this process hands a handler instead of the request's own body: the
# dashboard's form views call the REST handlers this way, so both run the same rules.


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` bytes before reading it all."""
    given: bytes | None = request.get(GIVEN_BODY)
    if given is not None:
        if len(given) > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        return given
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json(request: web.Request) -> None:
    """415 unless the body is declared JSON (`application/json` or `*+json`) or not declared:
    a body sent as text or a form was meant for something else, and is never guessed at."""
    if "Content-Type" not in request.headers:
        return
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype}")


async def decode(request: web.Request, type_: type[T], limit: int) -> T:
    """Decode a JSON body into `type_`; 415 for another content type, 400 naming the field on
    malformed or invalid input."""
    require_json(request)
    return decode_bytes(await read_body(request, limit), type_)


async def decode_optional(request: web.Request, type_: type[T], limit: int) -> T:
    """Like decode, but an empty body stands for the type's defaults."""
    raw = await read_body(request, limit) if request.body_exists else b""
    if not raw.strip():
        return type_()
    require_json(request)
    return decode_bytes(raw, type_)


async def multipart(request: web.Request) -> MultipartReader:
    """The reader of a multipart body; 400 when the Content-Type has no usable boundary."""
    try:
        return await request.multipart()
    except ValueError as exc:  # aiohttp: "boundary missed for Content-Type: ..."
        raise InvalidInput(f"Content-Type: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidInput(f"request body: duplicate key `{key[:64]}` in a JSON object")
        seen[key] = value
    return seen


def decode_bytes(body: bytes, type_: type[T]) -> T:
    """Decode JSON bytes into `type_`: 400 on empty, malformed, too deep, duplicate-key or
    invalid input, with msgspec's `$.path` naming the field."""
    if not body.strip():
        raise InvalidInput("request body: expected a JSON object, got an empty body")
    try:
        value = msgspec.json.decode(body, type=type_)
        # msgspec keeps the last of duplicate keys silently; a person sending two values for
        # one field made a mistake worth naming.
        _json.loads(body, object_pairs_hook=_no_duplicates)
        return value
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"request body: {explain(exc, type_)}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        try:  # msgspec (>= 0.23) or the duplicate-key pass found it; say where
            body.decode()
        except UnicodeDecodeError as bad:
            raise InvalidInput(f"request body: JSON text is not valid UTF-8 ({bad.reason} at "
                               f"byte {bad.start})") from None
        raise InvalidInput(f"request body: malformed JSON ({exc})") from None
    except RecursionError:
        raise InvalidInput("request body: JSON is nested too deeply") from None


_ENCODED_TWICE = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)


def path_param(request: web.Request, name: str) -> str:
    """A free-form path taken from the URL (decoded once by aiohttp). An encoded dot, slash,
    backslash or NUL left after that decoding was encoded twice: a traversal attempt through
    any layer that decodes again, so it is refused rather than stored as a literal name. A path
    whose percent-decoding is not UTF-8 is refused too (aiohttp would keep `%FF` literally)."""
    value = request.match_info[name]
    try:
        urllib.parse.unquote_to_bytes(request.rel_url.raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: the URL path is not valid UTF-8 once percent-decoded; "
                           "encode file names as UTF-8") from None
    if _ENCODED_TWICE.search(value):
        raise InvalidInput(f"{name}: '{value[:80]}' is percent-encoded twice; encode a path once")
    return value


def _accepted(header: str) -> list[tuple[str, float]]:
    out = []
    for item in header.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if kind:
            out.append((kind.lower(), q))
    return out


def negotiate(request: web.Request, offered: tuple[str, ...]) -> str:
    """The offered media type the Accept header prefers; the first one when there is no
    header, a wildcard or a tie (a client asking for something else still gets an answer)."""
    accepted = _accepted(request.headers.get("Accept", ""))
    best, best_q = offered[0], -1.0
    for kind in offered:
        major = kind.split("/")[0] + "/*"
        q = max((q for name, q in accepted if name == kind), default=None)
        if q is None:
            q = max((q for name, q in accepted if name == major), default=None)
        if q is None or q <= 0:
            continue  # only a wildcard names it (or q=0): the default decides
        if q > best_q:
            best, best_q = kind, q
    return best


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status,
                        content_type="application/json", headers=headers)


def q_int(request: web.Request, name: str, default: int, lo: int = 0, hi: int = MAX_INT) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name}: expected an integer, got '{raw[:40]}'") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{name}: must be between {lo} and {hi}")
    return value


def q_limit(request: web.Request, default: int, cap: int, name: str = "limit") -> int:
    """A page size: at least 1; values above `cap` are capped, as the seeds' lists do."""
    value = q_int(request, name, default, -MAX_INT)
    if value < 1:
        raise InvalidInput(f"{name}: must be at least 1")
    return min(value, cap)


def q_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    value = raw.lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise InvalidInput(f"{name}: expected true or false, got '{raw[:40]}'")


def q_choice(request: web.Request, name: str, choices: tuple[str, ...],
             default: str | None) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise InvalidInput(f"{name}: must be one of {', '.join(choices)}")
    return raw

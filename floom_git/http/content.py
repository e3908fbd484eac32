"""Serving user content (files of contexts, workers, runs, artifacts, exports) so it cannot run on
the API origin: every such response is sandboxed by its Content-Security-Policy, and only a short
list of types that browsers never execute is shown inline; everything else is a download. Every
file-serving handler answers through `user_file`."""

from __future__ import annotations

import re
import urllib.parse

from aiohttp import web

SANDBOX = "default-src 'none'; sandbox"
# Shown inline (still sandboxed): plain text, JSON, PDF, and images other than SVG (SVG can script).
INLINE = frozenset({"text/plain", "application/json", "application/x-ndjson", "application/pdf"})
_UNSAFE_IMAGES = frozenset({"image/svg+xml"})
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9._-]+")


def is_inline(content_type: str) -> bool:
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype in INLINE or (ctype.startswith("image/") and ctype not in _UNSAFE_IMAGES)


def disposition(content_type: str, filename: str | None = None) -> str:
    """`inline` or `attachment`, with the file name (an ASCII fallback and the RFC 5987 form)."""
    kind = "inline" if is_inline(content_type) else "attachment"
    if not filename:
        return kind
    name = filename.rsplit("/", 1)[-1]
    ascii_name = _NOT_TOKEN.sub("_", name).strip("._") or "download"
    return (
        f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
    )


def headers(content_type: str, filename: str | None = None) -> dict[str, str]:
    """The headers that keep user content of `content_type` from running in a browser."""
    return {
        "Content-Security-Policy": SANDBOX,
        "Content-Disposition": disposition(content_type, filename),
        "X-Content-Type-Options": "nosniff",
    }


def user_file(body: bytes, content_type: str, filename: str | None = None,
              charset: str | None = None, status: int = 200) -> web.Response:
    """A response carrying user content: its own type, sandboxed, inline only when safe."""
    return web.Response(body=body, status=status, content_type=content_type, charset=charset,
                        headers=headers(content_type, filename))

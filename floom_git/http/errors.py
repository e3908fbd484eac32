"""Domain error -> HTTP status, in one table, and the one error body: {"detail": "...", "code":
"..."}, where `code` is the FloomError's machine-readable code (or, for refusals aiohttp makes
itself, the code of the status)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from floom_git import errors

STATUS: dict[type[errors.FloomError], int] = {
    errors.InvalidInput: 400,
    errors.InvalidManifest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Unprocessable: 422,
    errors.RateLimited: 429,
    errors.BadGateway: 502,
    errors.Unavailable: 503,
}


# The code of a refusal that is no FloomError (aiohttp's own 404/405/413, an unhandled 500).
CODE_OF_STATUS: dict[int, str] = {status: cls.code for cls, status in STATUS.items()
                                  if cls is not errors.InvalidManifest}
CODE_OF_STATUS.update({405: "method_not_allowed", 500: "internal_error"})


def status_for(exc: errors.FloomError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_response(status: int, detail: str, headers: dict[str, str] | None = None,
                   code: str | None = None) -> web.Response:
    code = code or CODE_OF_STATUS.get(status) or ("error" if status < 500 else "internal_error")
    return web.Response(
        status=status,
        body=msgspec.json.encode({"detail": detail, "code": code}),
        content_type="application/json",
        headers=headers,
    )


def from_domain(exc: errors.FloomError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited | errors.Unavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = exc.challenge or 'Bearer realm="floom"'
    return error_response(status_for(exc), exc.message, headers or None, exc.code)

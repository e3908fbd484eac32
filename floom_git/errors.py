"""Domain errors raised by storage and services; http/errors.py maps each class to a status
and sends `code` beside the message: {"detail": message, "code": code}.

    FloomError
      ├── InvalidInput        bad field, path or file content   (400)
      │     └── InvalidManifest  a worker.yml that does not validate
      ├── Unauthenticated     missing or wrong credential      (401)
      ├── Forbidden           known caller, not allowed        (403)
      ├── NotFound            no such resource, or not visible (404)
      ├── Conflict            exists already / wrong state     (409)
      ├── PayloadTooLarge     body, file or archive too big    (413)
      ├── UnsupportedMediaType  body of the wrong Content-Type (415)
      ├── Unprocessable       well-formed but semantically bad (422)
      ├── RateLimited         too many requests                (429)
      ├── BadGateway          an outside server failed us      (502)
      └── Unavailable         a workspace that cannot serve now (503)
"""

from __future__ import annotations


class FloomError(Exception):
    """Base of every domain error; `message` is what the user reads in `detail`."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FloomError):
    code = "invalid_input"


class InvalidManifest(InvalidInput):
    code = "invalid_manifest"


class Unauthenticated(FloomError):
    """`challenge` is the WWW-Authenticate value (default: a Bearer challenge)."""

    code = "unauthenticated"

    def __init__(self, message: str, challenge: str | None = None) -> None:
        super().__init__(message)
        self.challenge = challenge


class Forbidden(FloomError):
    code = "forbidden"


class NotFound(FloomError):
    code = "not_found"


class Conflict(FloomError):
    code = "conflict"


class PayloadTooLarge(FloomError):
    code = "payload_too_large"


class UnsupportedMediaType(FloomError):
    code = "unsupported_media_type"


class Unprocessable(FloomError):
    code = "unprocessable"


class RateLimited(FloomError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadGateway(FloomError):
    """A server this one talks to (a remote MCP server, an OAuth provider) failed or refused."""

    code = "bad_gateway"


class Unavailable(FloomError):
    """The workspace cannot serve right now (its repository could not be recovered, its
    working tree cannot be brought up to date, or it is frozen for a move): nothing was written.
    `retry_after` (seconds), when set, is sent as Retry-After."""

    code = "unavailable"
    retry_after: int | None = None

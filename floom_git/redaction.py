"""What is hidden wherever something is shown or logged: credentials in URLs (the user part of
`https://TOKEN@host`, the password of `user:pass@`, credential-like query values) and secret
tokens in request paths (share links, magic links). A leaf: imports nothing of the package."""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/@?#\s]*)@", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"([?&][^=&#\s]*(?:token|key|secret|sig|pass|auth|credential)[^=&#\s]*=)[^&#\s]*", re.IGNORECASE
)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)
# /s/<share token>, /auth/magic/<link>, under any of the /api, /v1, /api/v1 prefixes
_TOKEN_PATH = re.compile(r"(/s/|/auth/magic/)[^/?#]+")
_REDACTED = "[redacted]"


def mask_url(url: str) -> str:
    """`url` with its credentials masked: `https://***@host`, `https://user:***@host`,
    `?token=***`. Paths and plain remote names (`git@host:team/x.git`) pass unchanged."""
    match = _USERINFO.match(url)
    if match:
        user, sep, _ = match.group(2).partition(":")
        url = f"{match.group(1)}{user + ':' + MASK if sep else MASK}@{url[match.end():]}"
    return _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, url)


def mask_urls_in(text: str) -> str:
    """`text` (an error message, a log line) with every URL in it masked."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def redact_path(path: str) -> str:
    """A request path fit for a log: `/s/fls_…` -> `/s/[redacted]`, magic links alike."""
    return _TOKEN_PATH.sub(lambda m: m.group(1) + _REDACTED, path)

"""Worker webhook secrets and deliveries (REFERENCE.md §2.9), kept in system/webhooks/ (never in a
workspace repository) under the workspace's internal id: the secret's SHA-256 digest,
delivery-id receipts for 24 h so a replayed delivery starts no second run, and an in-memory
per-(worker, client) rate window.

URL token = HMAC-SHA256(key=digest, msg=worker_id)[:32]; the alternative header is
`X-Floom-Signature: sha256=<HMAC-SHA256(key=digest, msg=raw body)>`. The digest is the hex
SHA-256 of the raw secret, used as ASCII key bytes.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from floom_git.errors import RateLimited, Unauthenticated
from floom_git.storage import private

RECEIPT_TTL = 24 * 3600


MAX_RATE_KEYS = 10_000
# One answer for a missing secret and a wrong token alike.
REFUSED = "Invalid webhook token or signature"


def url_token(digest: str, worker_id: str) -> str:
    return hmac.new(digest.encode(), worker_id.encode(), hashlib.sha256).hexdigest()[:32]


def body_signature(digest: str, body: bytes) -> str:
    return "sha256=" + hmac.new(digest.encode(), body, hashlib.sha256).hexdigest()


class WebhookStore:
    def __init__(self, system_dir: Path) -> None:
        self._dir = system_dir / "webhooks"
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str, str], collections.deque[float]] = {}

    def _path(self, ws_id: str, kind: str) -> Path:
        return self._dir / f"{ws_id}.{kind}.json"

    def _load(self, path: Path) -> dict[str, Any]:
        return private.read_json(path)

    def _save(self, path: Path, data: dict[str, Any]) -> None:
        private.write_json(path, data)

    # -- secrets --------------------------------------------------------------------------------
    def rotate(self, ws_id: str, worker_id: str) -> tuple[str, str]:
        """A new secret for the worker: returns (raw secret, URL token). Only the digest is kept."""
        raw = secrets.token_hex(32)
        digest = hashlib.sha256(raw.encode()).hexdigest()
        with self._lock:
            path = self._path(ws_id, "secrets")
            data = self._load(path)
            data[worker_id] = {"digest": digest, "rotated_at": time.time()}
            self._save(path, data)
        return raw, url_token(digest, worker_id)

    def digest(self, ws_id: str, worker_id: str) -> str | None:
        item = self._load(self._path(ws_id, "secrets")).get(worker_id)
        return item.get("digest") if isinstance(item, dict) else None

    def verify(self, ws_id: str, worker_id: str, token: str | None, signature: str | None,
               body: bytes) -> None:
        """Raise Unauthenticated unless the URL token or the body signature matches."""
        digest = self.digest(ws_id, worker_id)
        if digest is None:
            raise Unauthenticated(REFUSED)
        # errors="replace": header bytes that are not UTF-8 arrive as surrogates; such a value
        # can only fail the comparison, never raise
        if token and hmac.compare_digest(token.encode(errors="replace"),
                                         url_token(digest, worker_id).encode()):
            return
        if signature and hmac.compare_digest(signature.strip().encode(errors="replace"),
                                             body_signature(digest, body).encode()):
            return
        raise Unauthenticated(REFUSED)

    def drop(self, ws_id: str) -> None:
        """Forget the secrets, receipts and rate windows of a deleted workspace (internal id)."""
        with self._lock:
            for kind in ("secrets", "deliveries"):
                self._path(ws_id, kind).unlink(missing_ok=True)
            for key in [k for k in self._hits if k[0] == ws_id]:
                del self._hits[key]

    # -- deliveries and rate -------------------------------------------------------------------
    def seen(self, ws_id: str, worker_id: str, delivery_id: str) -> str | None:
        """The run started by an earlier delivery with this id (within 24 h), if any."""
        item = self._load(self._path(ws_id, "deliveries")).get(f"{worker_id}/{delivery_id}")
        if isinstance(item, dict) and time.time() - item.get("at", 0) < RECEIPT_TTL:
            return item.get("run_id")
        return None

    def remember(self, ws_id: str, worker_id: str, delivery_id: str, run_id: str) -> None:
        cutoff = time.time() - RECEIPT_TTL
        with self._lock:
            path = self._path(ws_id, "deliveries")
            data = {k: v for k, v in self._load(path).items()
                    if isinstance(v, dict) and v.get("at", 0) >= cutoff}
            data[f"{worker_id}/{delivery_id}"] = {"run_id": run_id, "at": time.time()}
            self._save(path, data)

    def check_rate(
        self, ws_id: str, worker_id: str, client: str, limit: int, window: float
    ) -> None:
        """RateLimited once `limit` deliveries for (worker, client) fall within `window` seconds."""
        now = time.monotonic()
        if len(self._hits) > MAX_RATE_KEYS:  # anyone may call with made-up ids: stay bounded
            for key in [k for k, d in self._hits.items() if not d or now - d[-1] >= window]:
                del self._hits[key]
        hits = self._hits.setdefault((ws_id, worker_id, client), collections.deque())
        while hits and now - hits[0] >= window:
            hits.popleft()
        if len(hits) >= limit:
            retry = max(1, int(window - (now - hits[0])) + 1)
            raise RateLimited(f"Too many webhook deliveries for {worker_id}; retry later", retry)
        hits.append(now)

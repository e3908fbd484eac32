"""API tokens: `floom_` + 32 random bytes, shown once, stored as HMAC-SHA256 under the server
pepper. Personal tokens act as their user; workspace tokens act in one workspace with a fixed
role. `last_used_at` is kept in memory and flushed in batches, so a request never writes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import replace

from floom_git.errors import InvalidInput, NotFound, Unauthenticated
from floom_git.schemas.rows import TokenRow
from floom_git.services.identity.cache import ReadCache
from floom_git.storage.system_store import SystemStore

PREFIX = "floom_"
KINDS = ("personal", "cli", "workspace")
MAX_NAME = 100
MAX_DAYS = 3650
INVALID = "Invalid credentials"


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX) and 40 <= len(value) <= 200


class Tokens:
    def __init__(self, store: SystemStore, pepper: bytes) -> None:
        self.store = store
        self._pepper = pepper
        self._used: dict[str, float] = {}
        self._used_lock = threading.Lock()
        self._cache: ReadCache[TokenRow] = ReadCache(store)
        self.now = time.time

    def digest(self, value: str) -> bytes:
        return hmac.digest(self._pepper, value.encode(), hashlib.sha256)

    def new(self, *, user_id: str, kind: str, name: str, workspace_id: str | None = None,
            role: str | None = None, expires_days: int | None = None,
            expires_at: float | None = None) -> tuple[str, TokenRow]:
        """A token row (not stored yet) and its one-time plaintext value."""
        if kind not in KINDS:
            raise InvalidInput(f"kind: must be one of {', '.join(KINDS)}")
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise InvalidInput(f"name: must be 1-{MAX_NAME} printable characters")
        now = self.now()
        if expires_days is not None:
            expires_at = self.expiry(expires_days)
        value = PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(id="tok_" + secrets.token_hex(8), kind=kind, name=name, user_id=user_id,
                       workspace_id=workspace_id, role=role, created_at=now, expires_at=expires_at,
                       last_used_at=None, revoked_at=None)
        return value, row

    def expiry(self, days: int | None) -> float | None:
        """When a token asked to live `days` days from now ends (None: never); InvalidInput when
        `days` is out of range."""
        if days is None:
            return None
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput(f"expires_days: must be between 1 and {MAX_DAYS}")
        return self.now() + days * 86400

    def mint(self, **kwargs: object) -> tuple[str, TokenRow]:
        """Create and store a token (see `new`); the plaintext is returned once, never stored."""
        value, row = self.new(**kwargs)  # type: ignore[arg-type]
        self.store.add_token(row, self.digest(value))
        return value, row

    def resolve(self, value: str) -> TokenRow:
        """The live token with this value; Unauthenticated when unknown, expired or revoked."""
        digest = self.digest(value)
        row = self._cache.get(digest)
        if row is None:
            row = self.store.token_by_digest(digest)
            if row is None:
                raise Unauthenticated(INVALID)
            self._cache.put(digest, row)
        now = self.now()
        if row.revoked_at is not None:
            raise Unauthenticated("Token revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthenticated("Token expired")
        with self._used_lock:
            self._used[row.id] = now
        return row

    def _with_usage(self, row: TokenRow) -> TokenRow:
        seen = self._used.get(row.id)
        if seen is not None and (row.last_used_at or 0) < seen:
            return replace(row, last_used_at=seen)
        return row

    def get(self, token_id: str) -> TokenRow:
        row = self.store.token(token_id)
        if row is None:
            raise NotFound("Token not found")
        return self._with_usage(row)

    def list(self, *, user_id: str | None = None, workspace_id: str | None = None,
             kinds: tuple[str, ...] = ()) -> list[TokenRow]:
        return [
            self._with_usage(r)
            for r in self.store.tokens(user_id=user_id, workspace_id=workspace_id, kinds=kinds)
        ]

    def revoke(self, token_id: str) -> TokenRow:
        row = self.get(token_id)
        if row.revoked_at is None:
            self.store.revoke_token(token_id, self.now())
        return self.get(token_id)

    def flush_usage(self) -> int:
        """Write the remembered last-use times; blocking (a small transaction)."""
        with self._used_lock:
            used, self._used = self._used, {}
        if used:
            self.store.touch_tokens(used)
        return len(used)

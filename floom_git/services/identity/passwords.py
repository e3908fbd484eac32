"""Password hashing: argon2id (argon2-cffi) with a small cache of successful verifies, so a
person who signs in again does not pay ~120 ms of CPU each time. Call verify off the event loop."""

from __future__ import annotations

import hashlib
import threading
import time

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

CACHE_SECONDS = 300
CACHE_SIZE = 1024


class Passwords:
    def __init__(self, profile: str = "RFC_9106_LOW_MEMORY") -> None:
        params = getattr(profiles, profile, None) if profile.isupper() else None
        if params is None:
            raise ValueError(f"unknown argon2 profile {profile!r}")
        self._hasher = PasswordHasher.from_parameters(params)
        self._ok: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def _key(self, user_id: str, password: str) -> bytes:
        return hashlib.sha256(f"{user_id}\0{password}".encode()).digest()

    def verify(self, user_id: str, stored: str | None, password: str) -> bool:
        """Whether `password` matches `stored`; a user without a hash never matches."""
        if stored is None:
            self.burn(password)
            return False
        key = self._key(user_id, password)
        now = time.monotonic()
        with self._lock:
            hit = self._ok.get(key)
        if hit is not None and hit[0] == stored and hit[1] > now:
            return True
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        with self._lock:
            if len(self._ok) >= CACHE_SIZE:
                self._ok = {k: v for k, v in self._ok.items() if v[1] > now}
                if len(self._ok) >= CACHE_SIZE:
                    self._ok.clear()
            self._ok[key] = (stored, now + CACHE_SECONDS)
        return True

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    def burn(self, password: str) -> None:
        """Spend the time of one verify, so an unknown user name is not told apart by timing."""
        if self._dummy is None:
            self._dummy = self._hasher.hash("not-a-password-of-anyone")
        try:
            self._hasher.verify(self._dummy, password)
        except (VerificationError, InvalidHashError):
            pass

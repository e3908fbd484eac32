"""In-memory rate limits: a token bucket per (bucket, key), where the key is an identity or a
client IP. List endpoints get a generous per-identity budget; sign-in, magic-link, device-flow
and token-minting routes a tight one. Wrong credentials spend a per-IP budget; once it is used
up every credential from that IP is refused until it refills (`auth_attempt`), so guessing a
secret is slow. Over budget raises RateLimited (429 + Retry-After)."""

from __future__ import annotations

import contextlib
import functools
import math
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from floom_git.config import Settings
from floom_git.errors import RateLimited, Unauthenticated
from floom_git.http.keys import LIMITER
from floom_git.services.auth import NoCredential

MAX_KEYS = 50_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class Limiter:
    def __init__(self, settings: Settings) -> None:
        self.per_minute = {
            "list": settings.rate_list_per_minute,
            "auth": settings.rate_auth_per_minute,
            "login": settings.rate_login_per_minute,
            "auth_fail": settings.rate_auth_fail_per_minute,
            # a CLI polls the device exchange every few seconds while its user approves
            "poll": max(60,
                        settings.rate_auth_per_minute) if settings.rate_auth_per_minute > 0 else 0,
        }
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.clock = time.monotonic

    def hit(self, bucket: str, key: str, per_minute: int | None = None, *,
            spend: bool = True, what: str = "requests") -> None:
        """Spend one request of `key` in `bucket`; RateLimited when the budget is used up.
        With `spend=False` only check that one is left.

        A limit of 0 (or less) switches the bucket off.
        """
        limit = per_minute if per_minute is not None else self.per_minute[bucket]
        if limit <= 0:
            return
        rate = limit / 60.0
        now = self.clock()
        state = self._buckets.get((bucket, key))
        if state is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            state = self._buckets[(bucket, key)] = _Bucket(float(limit), now)
        else:
            state.tokens = min(float(limit), state.tokens + (now - state.at) * rate)
            state.at = now
        if state.tokens < 1.0:
            wait = math.ceil((1.0 - state.tokens) / rate)
            raise RateLimited(f"Too many {what}; retry in {wait} s", retry_after=max(1, wait))
        if spend:
            state.tokens -= 1.0

    def forget(self, keys: set[str]) -> None:
        """Drop the buckets of these keys (e.g. the tokens of a deleted workspace)."""
        for name_key in [k for k in self._buckets if k[1] in keys]:
            del self._buckets[name_key]

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (they behave like new ones)."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.per_minute.get(k[0], 60) / 60.0
            >= self.per_minute.get(k[0], 60)
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= MAX_KEYS:
            self._buckets.clear()


@functools.lru_cache(maxsize=1024)
def _returns_list(response: object) -> bool:
    return typing.get_origin(response) is list


def bucket_of(method: str, response: object, extra: dict[str, object]) -> str | None:
    """The bucket a route falls in: declared in `extra["rate"]`, or "list" for a GET returning a
    list (so list routes added later are limited without anyone remembering to)."""
    declared = extra.get("rate")
    if isinstance(declared, str):
        return declared
    if method == "GET" and _returns_list(response):
        return "list"
    return None


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


@contextlib.contextmanager
def auth_attempt(request: web.Request) -> Iterator[None]:
    """Check a credential inside this block: refused (429) while the client IP has used up its
    budget of failures, and a failure (Unauthenticated, but not a request that sent no
    credential at all) spends one."""
    limiter = request.app.get(LIMITER)
    if limiter is None:
        yield
        return
    ip = client_ip(request)
    limiter.hit("auth_fail", ip, spend=False, what="failed sign-ins from your address")
    try:
        yield
    except NoCredential:
        raise
    except Unauthenticated:
        with contextlib.suppress(RateLimited):
            limiter.hit("auth_fail", ip)
        raise


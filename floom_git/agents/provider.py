"""The one interface every LLM provider implements (a streamed model turn), and the error a
provider raises: HTTP status, whether a retry may help, and how long the server asked us to wait."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from floom_git.agents.messages import ModelRequest, StreamEvent

RETRYABLE_STATUSES = frozenset({408, 409, 429})


class Provider(Protocol):
    """`stream` yields TextDelta events as the text arrives and ends with exactly one TurnDone;
    it raises ProviderError for anything the provider refused or broke. The SDK's own retries
    are off: retries belong to floom_git.agents.turn, which knows the run's deadline."""

    name: str
    model: str

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


class ProviderError(Exception):
    """`status` is the HTTP status (None: no response); `retry_after` in seconds when given."""

    code = "provider_error"

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


class ProviderStalled(ProviderError):
    """The stream sent nothing for longer than the stall timeout."""

    code = "provider_timeout"


def status_error(status: int, body: object, fallback: str,
                 headers: Mapping[str, str]) -> ProviderError:
    """The error for an HTTP error answer (`body` as the SDK decoded it): 408/409/429 and 5xx
    may be retried."""
    retryable = status in RETRYABLE_STATUSES or status >= 500
    message = fallback
    inner = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str):
        message = inner["message"]
    return ProviderError(f"HTTP {status}: {message}", status=status,
                         retry_after=retry_after(headers), retryable=retryable)


def connection_error(message: str) -> ProviderError:
    return ProviderError(f"connection failed: {message}", retryable=True)


@contextmanager
def sdk_errors(sdk: Any, base: type[Exception]) -> Iterator[None]:
    """Raise what the official SDK `sdk` (openai, anthropic: the same exception shapes; `base`
    its root exception) raised as a ProviderError."""
    import httpx2  # the SDKs' HTTP client; only a provider needs it loaded

    try:
        yield
    except sdk.APIStatusError as exc:
        raise status_error(exc.status_code, exc.body, exc.message, exc.response.headers) from None
    except sdk.APIConnectionError as exc:
        raise connection_error(str(exc)) from None
    except httpx2.HTTPError as exc:  # the SDKs do not wrap a connection lost mid-stream
        raise connection_error(f"{type(exc).__name__}: {exc}") from None
    except base as exc:
        raise ProviderError(f"bad answer from the provider: {exc}") from None


def retry_after(headers: Mapping[str, str], now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = lower.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            value = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
        if math.isfinite(value):
            return max(0.0, value)
    return None

"""One model turn: stream it from the provider with a stall watchdog, and retry failures that may
pass (429 honouring Retry-After up to a cap, 408/409, 5xx, lost connections) before any text was
streamed, never past the run's deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec

from floom_git.agents.messages import ModelRequest, TextDelta, TurnDone
from floom_git.agents.provider import Provider, ProviderError, ProviderStalled

OnDelta = Callable[[str], Awaitable[None]]
OnRetry = Callable[[int, float, ProviderError], Awaitable[None]]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_retries: int = 3
    backoff_base: float = 0.5  # seconds; doubled per attempt when the server names no delay
    backoff_max: float = 8.0
    max_retry_after: float = 60.0  # a longer Retry-After fails the turn instead of waiting
    stall_timeout: float = 120.0  # seconds without a stream event before the turn is abandoned


async def model_turn(provider: Provider, request: ModelRequest, policy: RetryPolicy,
                     on_delta: OnDelta, on_retry: OnRetry, *, deadline: float | None) -> TurnDone:
    """The finished turn. Raises ProviderStalled when the stream stalls and ProviderError when
    the provider fails for good (after retries, or a failure after text was already streamed)."""
    attempt = 0
    while True:
        streamed = False

        async def delta(text: str) -> None:
            nonlocal streamed
            streamed = True
            await on_delta(text)

        try:
            return await _stream(provider, request, policy.stall_timeout, delta)
        except ProviderStalled:
            raise
        except ProviderError as exc:
            if streamed or not exc.retryable or attempt >= policy.max_retries:
                raise
            wait = _delay(exc, attempt, policy)
            loop = asyncio.get_running_loop()
            if deadline is not None and loop.time() + wait > deadline:
                raise ProviderError(f"{exc.message} (a retry in {wait:g}s would pass the run's "
                                    f"deadline)", status=exc.status) from None
            attempt += 1
            await on_retry(attempt, wait, exc)
            await asyncio.sleep(wait)


def _delay(exc: ProviderError, attempt: int, policy: RetryPolicy) -> float:
    if exc.retry_after is None:
        return float(min(policy.backoff_base * 2 ** attempt, policy.backoff_max))
    if exc.retry_after > policy.max_retry_after:
        raise ProviderError(f"{exc.message} (the provider asks to wait {exc.retry_after:g}s, "
                            f"more than the {policy.max_retry_after:g}s cap)", status=exc.status)
    return exc.retry_after


async def _stream(provider: Provider, request: ModelRequest, stall: float,
                  on_delta: OnDelta) -> TurnDone:
    done: TurnDone | None = None
    events = provider.stream(request)
    try:
        while True:
            try:
                async with asyncio.timeout(stall):
                    event = await anext(events)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise ProviderStalled(f"the provider sent nothing for {stall:g}s") from None
            if isinstance(event, TextDelta):
                await on_delta(event.text)
            else:
                done = event
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    if done is None:
        raise ProviderError("the provider's stream ended without a complete message")
    return done

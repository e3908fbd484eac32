"""The guarded egress client (egress.py has the rules): httpx2 over an httpcore network backend
that resolves a host, checks every address it resolves to, and connects to a checked one.
Imported where a request is made, not at start-up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from floom_git.services.egress import PRIVATE_HINT, Resolve, blocked_address, resolve_host

DEFAULT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend that resolves, checks and connects to the checked address."""

    def __init__(self, allow_private: bool, resolve: Resolve = resolve_host) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore2.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not self._allow_private:
            bad = [a for a in addresses if blocked_address(a)]
            if bad:
                raise httpcore2.ConnectError(
                    f"{host} resolves to a non-public address ({bad[0]}); refused ({PRIVATE_HINT})")
        error: Exception = httpcore2.ConnectError(f"{host}: no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not reachable through connections")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def http_client(allow_private: bool, *, headers: dict[str, str] | None = None,
                timeout: httpx2.Timeout | None = None, resolve: Resolve = resolve_host,
                **kwargs: Any) -> httpx2.AsyncClient:
    """An httpx2 client whose every connection goes through GuardedBackend; `kwargs` go to the
    client class (e.g. authlib's OAuth2 client)."""
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    # httpx2 builds its pool without a way to pass a backend; replace it with one that has it.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(trust_env=False),
        network_backend=GuardedBackend(allow_private, resolve))
    client_class = kwargs.pop("client_class", httpx2.AsyncClient)
    client: httpx2.AsyncClient = client_class(
        transport=transport, headers=headers, timeout=timeout or DEFAULT_TIMEOUT, trust_env=False,
        follow_redirects=False, **kwargs)
    return client

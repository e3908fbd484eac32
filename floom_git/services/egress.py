"""Outbound HTTP to servers people name (remote MCP servers, OAuth endpoints). A URL is checked
when it is registered (no loopback, private, link-local, shared or reserved host unless private
URLs are allowed) and again at connect time by the transport itself, on every address the name
resolves to, and the socket goes to the address that was checked: a DNS answer that changes
between check and connect (rebinding) gains nothing. Proxies from the environment are ignored
so they cannot carry a request around the check."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2

from floom_git.errors import InvalidInput

Resolve = Callable[[str, int], Awaitable[list[str]]]
DEFAULT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
PRIVATE_HINT = "set WORKEROS_ALLOW_PRIVATE_MCP_URLS=1 to allow private targets"


def blocked_address(text: str) -> bool:
    """True for any address that is not a public unicast one (IPv4-mapped IPv6 included)."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def blocked_host(host: str) -> bool:
    """A host that names a blocked address literally (an IP, or localhost)."""
    host = host.strip("[]").rstrip(".").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return blocked_address(host)
    except ValueError:
        return False  # a name: checked after resolution, at connect time


def check_url(url: str, allow_private: bool, where: str = "url") -> str:
    """The URL if it is http(s) with a host and (unless `allow_private`) not a blocked host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname if parts.scheme in ("http", "https") else None
    except ValueError:  # a bracketed host that is no IPv6 address
        host = None
    if not host:
        raise InvalidInput(f"{where}: must be an http(s) URL with a host")
    if not allow_private and blocked_host(host):
        raise InvalidInput(f"{where}: loopback, private and link-local addresses are not allowed "
                           f"({PRIVATE_HINT})")
    return url


async def resolve_host(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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

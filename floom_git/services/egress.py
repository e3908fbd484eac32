"""Outbound HTTP to servers people name (remote MCP servers, OAuth endpoints). A URL is checked
when it is registered (no loopback, private, link-local, shared or reserved host unless private
URLs are allowed) and again at connect time by the transport itself, on every address the name
resolves to, and the socket goes to the address that was checked: a DNS answer that changes
between check and connect (rebinding) gains nothing. Proxies from the environment are ignored
so they cannot carry a request around the check. The client that checks at connect time is
egress_client.py, imported where a request is made (httpx takes a tenth of a second to import)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio

from floom_git.errors import InvalidInput

Resolve = Callable[[str, int], Awaitable[list[str]]]
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


"""The egress policy: which addresses are blocked, URL checks at registration, and the transport
that checks the resolved addresses at connect time (a name that resolves, or re-resolves, to a
private address never gets a connection)."""

from __future__ import annotations

import pytest
from aiohttp import web

from floom_git.errors import InvalidInput
from floom_git.services import egress, egress_client


@pytest.mark.parametrize("address, blocked", [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("::1", True), ("fe80::1", True), ("fc00::1", True), ("::ffff:127.0.0.1", True),
    ("::ffff:10.0.0.1", True), ("fe80::1%eth0", True),
    ("93.184.216.34", False), ("1.1.1.1", False), ("2606:4700:4700::1111", False),
])
def test_blocked_address_table(address, blocked):
    assert egress.blocked_address(address) is blocked


@pytest.mark.parametrize("url", ["http://localhost:8000/mcp", "http://sub.localhost/x",
                                 "http://[::1]:80/", "http://127.1.2.3/", "https://10.0.0.1/mcp"])
def test_check_url_refuses_literal_private_hosts(url):
    with pytest.raises(InvalidInput, match="not allowed"):
        egress.check_url(url, allow_private=False)
    assert egress.check_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["ftp://example.com/", "http:///nohost", "example.com/mcp"])
def test_check_url_refuses_non_http_urls(url):
    with pytest.raises(InvalidInput, match="must be an http"):
        egress.check_url(url, allow_private=True)


async def test_transport_refuses_a_name_that_resolves_to_loopback(aiohttp_server):
    """DNS rebinding stand-in: the name passes the registration check, then resolves to
    127.0.0.1; the guarded transport refuses before any byte is sent."""
    hits = []

    async def handler(request):
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)

    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    url = f"http://mcp.example.com:{server.port}/"
    egress.check_url(url, allow_private=False)  # a name: nothing to refuse yet
    async with egress_client.http_client(False, resolve=rebinding) as http:
        with pytest.raises(Exception, match="mcp.example.com resolves to a non-public address"):
            await http.get(url)
    assert hits == []
    async with egress_client.http_client(True, resolve=rebinding) as http:
        resp = await http.get(url)  # allowed: connects to the address it checked
    assert resp.text == "ok" and hits == ["/"]


async def test_transport_ignores_proxy_environment(monkeypatch, aiohttp_server):
    async def direct(request):
        return web.Response(text="direct")

    app = web.Application()
    app.router.add_get("/", direct)
    server = await aiohttp_server(app)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with egress_client.http_client(True) as http:
        resp = await http.get(f"http://127.0.0.1:{server.port}/")
    assert resp.text == "direct"

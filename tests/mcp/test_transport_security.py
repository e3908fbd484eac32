"""Which Host and Origin values the MCP endpoint accepts (DNS-rebinding protection)."""

from __future__ import annotations

from pathlib import Path

from floom_git.config import Settings
from floom_git.http.mcp_endpoint import security

BASE = Settings(data_dir=Path("/nonexistent"))


def test_loopback_server_accepts_loopback_names_only():
    sec = security(BASE)
    assert sec.enable_dns_rebinding_protection
    assert {"127.0.0.1:*", "localhost:*", "[::1]:*", "localhost"} <= set(sec.allowed_hosts)
    assert (
        "http://localhost:*" in sec.allowed_origins and "https://127.0.0.1:*" in sec.allowed_origins
    )
    assert not any("evil" in h for h in sec.allowed_hosts)


def test_public_url_and_allowed_hosts_are_added():
    sec = security(BASE.replace(host="0.0.0.0", public_url="https://floom.example.com",
                                mcp_allowed_hosts=("10.0.0.7:8000",)))
    assert sec.enable_dns_rebinding_protection
    assert {"floom.example.com", "floom.example.com:*", "10.0.0.7:8000"} <= set(sec.allowed_hosts)
    assert "https://floom.example.com" in sec.allowed_origins
    assert "0.0.0.0" not in sec.allowed_hosts


def test_all_interfaces_without_names_checks_no_host():
    assert not security(BASE.replace(host="0.0.0.0")).enable_dns_rebinding_protection

"""`login` through the real device flow (the CLI as a separate process, the code approved by a
user signed in with a password), the stored config file, `whoami`, `logout`, and the errors a
person meets before being signed in."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest

from tests.client.conftest import PASSWORD, Cli, floom_subprocess

DEADLINE = 30


async def _read_code(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    """The verification URL and user code the waiting `login` printed."""
    seen, found = [], {}
    while "Code" not in found:
        line = await asyncio.wait_for(proc.stderr.readline(), DEADLINE)
        assert line, f"login ended before printing a code: {seen}"
        seen.append(line.decode())
        label, _, value = line.decode().strip().partition(":")
        if label in ("URL", "Code"):
            found[label] = value.strip()
    return found["URL"], found["Code"]


def session_origin(server) -> str:
    """Writes signed in with the session cookie must come from this server's origin (CSRF rule)."""
    return str(server.make_url("/")).rstrip("/")


async def _signed_in(aiohttp_client, server) -> object:
    """A browser-like client holding ada's session cookie (password sign-in)."""
    session = await aiohttp_client(server, headers={"Origin": str(session_origin(server))})
    resp = await session.post("/auth/login", json={"username": "ada", "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return session


async def test_login_device_flow_stores_token_0600_and_logout_revokes_it(
        aiohttp_client, server, ada, base_env, anon_cli, config_home, url):
    proc = await floom_subprocess(base_env, "login")
    verification_url, code = await _read_code(proc)
    assert verification_url.startswith(url) and len(code) == 9
    browser = await _signed_in(aiohttp_client, server)
    # the printed URL is the dashboard's device page; approve the code with its form
    assert verification_url == f"{url}/ui/device"
    resp = await browser.post("/ui/device", data={"user_code": code, "decision": "approve"},
                              headers={"Origin": url})
    assert resp.status == 200 and "Approved" in await resp.text(), await resp.text()
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0, err.decode()
    assert f"Logged in to {url} as ada" in err.decode()

    path = config_home / "floom-git" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert stored["default_server"] == url
    token = stored["servers"][url]["token"]
    me = await (
        await browser.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    ).json()
    assert me["user"]["username"] == "ada"

    # a later command, without FLOOM_TOKEN or --server, uses the stored sign-in
    env = {k: v for k, v in base_env.items() if k != "FLOOM_URL"}
    who = await Cli(env)("whoami", "--json")
    assert who.code == 0, who.err
    assert (who.json()["user"]["username"], who.json()["role"]) == ("ada", "member")

    out = await anon_cli("logout")
    assert out.code == 0 and "token revoked" in out.err
    assert url not in json.loads(path.read_text())["servers"]
    revoked = await browser.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status == 401
    again = await anon_cli("whoami")
    assert again.code == 1 and "floom-git login" in again.err


async def test_login_denied_exits_1(aiohttp_client, server, ada, base_env, config_home):
    proc = await floom_subprocess(base_env, "login")
    _, code = await _read_code(proc)
    browser = await _signed_in(aiohttp_client, server)
    assert (await browser.post("/api/cli-auth/deny", json={"user_code": code})).status == 200
    _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 1
    assert (
        "error: the sign-in request was denied" in err.decode() and "Traceback" not in err.decode()
    )
    assert not (config_home / "floom-git" / "config.json").exists()


async def test_login_with_token_on_stdin(anon_cli, ada, url):
    result = await anon_cli("login", "--with-token", "--json", stdin=ada + "\n")
    assert result.code == 0, result.err
    assert result.json()["user"] == "ada" and result.json()["server"] == url
    assert (await anon_cli("whoami")).code == 0


async def test_login_with_a_refused_token_stores_nothing(anon_cli, config_home):
    result = await anon_cli("login", "--with-token", stdin="floom_not-a-real-token\n")
    assert (
        result.code == 1 and "refused the token" in result.err and "floom-git login" in result.err
    )
    assert not (config_home / "floom-git" / "config.json").exists()


async def test_whoami_shows_user_workspace_and_role(cli, url):
    result = await cli("whoami")
    assert result.code == 0, result.err
    assert "ada" in result.out and "default" in result.out and "member" in result.out
    assert "FLOOM_TOKEN" in result.out and url in result.out


@pytest.mark.parametrize("env,message", [
    ({}, "not signed in to"),
    ({"FLOOM_TOKEN": "floom_wrong"}, "refused the token from FLOOM_TOKEN"),
])
async def test_commands_without_a_valid_token_say_run_login(anon_cli, env, message):
    result = await anon_cli("workers", "list", env=env)
    assert result.code == 1
    assert message in result.err and "run `floom-git login`" in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


async def test_unreachable_server_is_one_clear_line(anon_cli, unused_tcp_port):
    result = await anon_cli("workers", "list", "--server", f"http://127.0.0.1:{unused_tcp_port}")
    assert result.code == 1
    assert result.err.startswith("error: cannot reach the floom-git server at http://127.0.0.1:")
    assert "Connection refused" in result.err and result.err.count("\n") == 1


async def test_a_corrupt_config_file_is_named(anon_cli, config_home):
    (config_home / "floom-git").mkdir(parents=True)
    (config_home / "floom-git" / "config.json").write_text("{not json")
    result = await anon_cli("whoami")
    assert result.code == 1 and "config.json" in result.err and "Traceback" not in result.err


async def test_logout_when_not_logged_in_is_fine(anon_cli):
    result = await anon_cli("logout")
    assert result.code == 0 and "not logged in" in result.err


async def test_usage_error_exits_2(anon_cli):
    assert (await anon_cli("runs", "frobnicate")).code == 2

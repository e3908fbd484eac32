"""The identity store: users, tokens, sessions, magic links, device codes and memberships, on a
real SQLite file in tmp_path. Time is moved with the store's clock, never slept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from floom_git.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from floom_git.services.identity import Identity, Lifetimes

PASSWORD = "correct horse battery staple"


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    identity = Identity(tmp_path / "system", password_profile="CHEAPEST")
    yield identity
    identity.close()


def later(seconds: float):
    return lambda: time.time() + seconds


@pytest.mark.parametrize("username", ["", "a", "Has Space", "-dash", "x" * 65, "ünï"])
def test_create_user_bad_name_is_refused(ident, username):
    with pytest.raises(InvalidInput, match="username"):
        ident.users.create(username, password=PASSWORD)


@pytest.mark.parametrize("password,reason", [("short", "12"), ("alice-is-great-2026", "user name")])
def test_create_user_weak_password_is_refused(ident, password, reason):
    with pytest.raises(InvalidInput, match=reason):
        ident.users.create("alice", password=password)


def test_create_user_twice_is_conflict(ident):
    ident.users.create("alice", email="a@example.com")
    with pytest.raises(Conflict):
        ident.users.create("ALICE")
    with pytest.raises(Conflict):
        ident.users.create("bob", email="A@example.com")


def test_login_user_checks_password(ident):
    user = ident.users.create("alice", email="a@example.com", password=PASSWORD)
    assert ident.users.login("alice", PASSWORD).id == user.id
    assert ident.users.login("a@example.com", PASSWORD).id == user.id  # the cached verify path
    for login, password in [("alice", PASSWORD + "x"), ("nobody", PASSWORD), ("", PASSWORD)]:
        with pytest.raises(Unauthenticated, match="Invalid username or password"):
            ident.users.login(login, password)
    passwordless = ident.users.create("bot")
    with pytest.raises(Unauthenticated):
        ident.users.login("bot", "")
    assert passwordless.password_hash is None


def test_resolve_token_refuses_unknown_expired_and_revoked(ident):
    user = ident.users.create("alice")
    value, row = ident.tokens.mint(user_id=user.id, kind="personal", name="ci", expires_days=1)
    assert value.startswith("floom_") and len(value) >= 6 + 43
    assert ident.tokens.resolve(value).id == row.id
    with pytest.raises(Unauthenticated, match="Invalid credentials"):
        ident.tokens.resolve(value[:-1] + ("A" if value[-1] != "A" else "B"))
    ident.tokens.now = later(2 * 86400)
    with pytest.raises(Unauthenticated, match="expired"):
        ident.tokens.resolve(value)
    ident.tokens.now = time.time
    ident.tokens.revoke(row.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        ident.tokens.resolve(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "expires_days": 0},
        {"name": "ok", "expires_days": 99999},
        {"name": "ok", "kind": "root"},
    ],
)
def test_mint_token_bad_fields_are_refused(ident, kwargs):
    args = {"user_id": "usr_1", "kind": "personal", **kwargs}
    with pytest.raises(InvalidInput):
        ident.tokens.mint(**args)


def test_flush_usage_records_last_used(tmp_path, ident):
    user = ident.users.create("alice")
    value, row = ident.tokens.mint(user_id=user.id, kind="personal", name="ci")
    assert ident.tokens.get(row.id).last_used_at is None
    ident.tokens.resolve(value)
    assert ident.tokens.get(row.id).last_used_at is not None  # visible before the flush
    assert ident.tokens.flush_usage() == 1
    reopened = Identity(tmp_path / "system", password_profile="CHEAPEST")
    assert reopened.tokens.get(row.id).last_used_at is not None
    reopened.close()


def test_session_expires_and_ends(ident):
    user = ident.users.create("alice")
    value = ident.sessions.create(user.id)
    assert ident.sessions.resolve(value).user_id == user.id
    ident.sessions.now = later(8 * 86400)
    with pytest.raises(Unauthenticated, match="expired"):
        ident.sessions.resolve(value)
    ident.sessions.now = time.time
    assert ident.sessions.end(value)
    with pytest.raises(Unauthenticated):
        ident.sessions.resolve(value)


def test_consume_magic_link_once(ident):
    user = ident.users.create("alice")
    link = ident.magic.issue(user.id)
    assert ident.magic.consume(link)[0] == user.id
    with pytest.raises(Unauthenticated, match="already used"):
        ident.magic.consume(link)


@pytest.mark.parametrize("mangle", [lambda t: t + "x", lambda t: "x" + t, lambda t: t.split(".")[0],
                                    lambda t: "", lambda t: "a.b"])
def test_consume_magic_link_forged_is_refused(ident, mangle):
    link = ident.magic.issue(ident.users.create("alice").id)
    with pytest.raises(Unauthenticated, match="Invalid magic link"):
        ident.magic.consume(mangle(link))


def test_consume_magic_link_expired_is_refused(ident):
    link = ident.magic.issue(ident.users.create("alice").id)
    ident.magic.now = later(901)
    with pytest.raises(Unauthenticated, match="expired"):
        ident.magic.consume(link)


def test_device_flow_states(ident):
    user = ident.users.create("alice")
    device_code, user_code = ident.devices.start("my laptop")
    with pytest.raises(InvalidInput, match="pending"):
        ident.devices.approved_user(device_code)
    ident.devices.decide(user_code.lower().replace("-", ""), user.id, approve=True)
    assert ident.devices.approved_user(device_code)[0] == user.id
    with pytest.raises(InvalidInput, match="already approved"):
        ident.devices.decide(user_code, user.id, approve=False)
    with pytest.raises(InvalidInput, match="unknown device code"):
        ident.devices.approved_user("nope")


def test_device_code_expires(ident):
    user = ident.users.create("alice")
    device_code, user_code = ident.devices.start("cli")
    ident.devices.now = later(601)
    with pytest.raises(InvalidInput, match="expired"):
        ident.devices.decide(user_code, user.id, approve=True)
    with pytest.raises(InvalidInput, match="expired"):
        ident.devices.approved_user(device_code)


def test_device_code_denied_is_forbidden(ident):
    user = ident.users.create("alice")
    device_code, user_code = ident.devices.start("cli")
    ident.devices.decide(user_code, user.id, approve=False)
    with pytest.raises(Forbidden, match="denied"):
        ident.devices.approved_user(device_code)


def test_last_owner_cannot_be_demoted_or_removed(ident):
    alice = ident.users.create("alice")
    bob = ident.users.create("bob")
    ident.members.add("ws", alice.id, "owner")
    with pytest.raises(Conflict, match="last owner"):
        ident.members.set_role("ws", alice.id, "admin", by_role="owner")
    with pytest.raises(Conflict, match="last owner"):
        ident.members.remove("ws", alice.id, by_role="owner")
    ident.members.add("ws", bob.id, "owner")
    ident.members.set_role("ws", alice.id, "member", by_role="owner")
    assert ident.members.role("ws", alice) == "member"


def test_only_owner_touches_owners(ident):
    alice = ident.users.create("alice")
    bob = ident.users.create("bob")
    ident.members.add("ws", alice.id, "owner")
    ident.members.add("ws", bob.id, "member")
    with pytest.raises(Forbidden):
        ident.members.set_role("ws", bob.id, "owner", by_role="admin")
    with pytest.raises(Forbidden):
        ident.members.remove("ws", alice.id, by_role="admin")
    with pytest.raises(Forbidden):
        ident.members.invite("ws", "c@example.com", "owner", by=bob.id, by_role="admin")
    with pytest.raises(NotFound):
        ident.members.set_role("ws", "usr_nobody", "member", by_role="owner")


def test_invite_is_taken_up_when_user_appears(ident):
    row = ident.members.invite("ws", "Carol@Example.com", "admin", by="usr_x", by_role="owner")
    assert (row.status, row.user_id, row.email) == ("pending", None, "carol@example.com")
    with pytest.raises(Conflict):
        ident.members.invite("ws", "carol@example.com", "member", by="usr_x", by_role="owner")
    carol = ident.users.create("carol", email="carol@example.com")
    assert ident.members.role("ws", carol) == "admin"
    with pytest.raises(Conflict, match="already a member"):
        ident.members.invite("ws", "carol@example.com", "member", by="usr_x", by_role="owner")


def test_server_admin_is_owner_everywhere(ident):
    root = ident.users.create("root", is_admin=True)
    assert ident.members.role("any-workspace", root) == "owner"


def test_system_files_hold_no_plaintext_credentials(tmp_path, ident):
    user = ident.users.create("alice", email="a@example.com", password=PASSWORD)
    token, _ = ident.tokens.mint(user_id=user.id, kind="personal", name="ci")
    session = ident.sessions.create(user.id)
    link = ident.magic.issue(user.id)
    device_code, user_code = ident.devices.start("cli")
    ident.close()
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "system").rglob("*") if p.is_file())
    for value in (PASSWORD, token, token[6:], session, link, link.split(".")[1], device_code,
                  user_code.replace("-", "")):
        assert value.encode() not in blobs, value
    assert b"alice" in blobs  # the store is really there
    for path in [tmp_path / "system", *(tmp_path / "system").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_store_is_shared_between_two_processes_views(tmp_path, ident):
    """The CLI and the server open the same database: a token minted by one is seen by the other."""
    other = Identity(tmp_path / "system", password_profile="CHEAPEST",
                     lifetimes=Lifetimes(session_seconds=60))
    user = other.users.create("alice")
    value, _ = other.tokens.mint(user_id=user.id, kind="personal", name="from-cli")
    other.close()
    assert ident.tokens.resolve(value).user_id == user.id

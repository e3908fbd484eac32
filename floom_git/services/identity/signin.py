"""Signing in, as the sign-in routes call it (the identity store is read and written off the event
loop): password login, sessions, magic links and the CLI device flow. A credential minted here
is never stronger than the one that asked for it (grants.derive)."""

from __future__ import annotations

import asyncio

from floom_git.errors import InvalidInput, NotFound
from floom_git.schemas.rows import TokenRow, UserRow
from floom_git.services.identity import Identity
from floom_git.services.identity.grants import UNLIMITED, Grant, derive

CLI_TOKEN_DAYS = 90


async def canonical_login(ident: Identity, login: str) -> str:
    """The one name a person signs in under, whichever name or email they typed."""
    return await asyncio.to_thread(ident.users.canonical_login, login)


async def password_login(ident: Identity, login: str, password: str) -> UserRow:
    return await asyncio.to_thread(ident.users.login, login, password)


async def start_session(ident: Identity, user_id: str, grant: Grant = UNLIMITED
                        ) -> tuple[str, float]:
    """A new session limited by `grant`: its cookie value and when it expires."""
    expires_at = ident.sessions.expires_at(grant)
    return await asyncio.to_thread(ident.sessions.create, user_id, grant), expires_at


async def end_session(ident: Identity, value: str) -> bool:
    return await asyncio.to_thread(ident.sessions.end, value)


async def issue_magic_link(ident: Identity, user_id: str, grant: Grant) -> str:
    return await asyncio.to_thread(ident.magic.issue, user_id, grant)


async def magic_sign_in(ident: Identity, token: str) -> tuple[UserRow, Grant]:
    """The user a magic link signs in and the grant it carries; the invitations waiting for the
    user's email become memberships."""
    def run() -> tuple[UserRow, Grant]:
        user_id, grant = ident.magic.consume(token)
        user = ident.users.get(user_id)
        if user.email:
            ident.store.claim_invites(user.id, user.email, ident.magic.now())
        return user, grant
    return await asyncio.to_thread(run)


async def start_device(ident: Identity, client_name: str) -> tuple[str, str]:
    """A new device sign-in: its device code (for the CLI) and user code (for the person)."""
    return await asyncio.to_thread(ident.devices.start, client_name)


async def decide_device(ident: Identity, user_code: str, user_id: str, approve: bool,
                        grant: Grant) -> None:
    await asyncio.to_thread(ident.devices.decide, user_code, user_id, approve, grant)


async def exchange_device(ident: Identity, device_code: str) -> tuple[str, TokenRow, UserRow]:
    """Trade an approved device code for a personal token of the approving user, exactly once:
    the token's value, its row and the user.

    The token acts as the approver and inherits the approving credential's grant (role cap,
    workspace, expiry), so it can never do more, or for longer, than what approved it.
    """
    def run() -> tuple[str, TokenRow, UserRow]:
        user_id, approved = ident.devices.approved_user(device_code)
        try:
            user = ident.users.get(user_id)
        except NotFound:
            raise InvalidInput("device_code: the approving user no longer exists") from None
        digest = ident.devices.device_digest(device_code)
        device = ident.store.device(digest)
        assert device is not None
        grant = derive(approved, expires_at=ident.tokens.now() + CLI_TOKEN_DAYS * 86400)
        value, row = ident.tokens.new(user_id=user.id, kind="cli", name=device.client_name,
                                      role=grant.role_cap, workspace_id=grant.workspace_id,
                                      expires_at=grant.expires_at)
        try:
            ident.store.exchange_device(digest, row, ident.tokens.digest(value))
        except LookupError:
            raise InvalidInput("device_code: already exchanged for a token") from None
        return value, row, user
    return await asyncio.to_thread(run)

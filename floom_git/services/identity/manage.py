"""Managing access, as the member and token routes call it (the identity store is written off the
event loop): invite a member, change a role, remove one; mint and revoke API tokens."""

from __future__ import annotations

import asyncio

from floom_git.schemas.rows import MemberRow, TokenRow, UserRow
from floom_git.services.identity import Identity

Member = tuple[MemberRow, UserRow | None]  # a membership and its user (None: a pending invite)


def _with_user(ident: Identity, row: MemberRow) -> Member:
    return row, ident.store.user(row.user_id) if row.user_id else None


async def invite_member(ident: Identity, ws_uid: str, email: str, role: str, by: str,
                        by_role: str) -> Member:
    """Add the user with this email, or a pending invite taken up when they sign in."""
    return await asyncio.to_thread(
        lambda: _with_user(ident, ident.members.invite(ws_uid, email, role, by, by_role)))


async def set_member_role(ident: Identity, ws_uid: str, key: str, role: str,
                          by_role: str) -> Member:
    return await asyncio.to_thread(
        lambda: _with_user(ident, ident.members.set_role(ws_uid, key, role, by_role)))


async def remove_member(ident: Identity, ws_uid: str, key: str, by_role: str) -> None:
    await asyncio.to_thread(ident.members.remove, ws_uid, key, by_role)


async def mint_token(ident: Identity, *, user_id: str, kind: str, name: str, role: str | None,
                     expires_at: float | None, workspace_id: str | None) -> tuple[str, TokenRow]:
    """A new token: its value (never stored, shown once) and its row."""
    return await asyncio.to_thread(lambda: ident.tokens.mint(
        user_id=user_id, kind=kind, name=name, role=role, expires_at=expires_at,
        workspace_id=workspace_id))


async def revoke_token(ident: Identity, token_id: str) -> TokenRow:
    return await asyncio.to_thread(ident.tokens.revoke, token_id)

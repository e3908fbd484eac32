"""Workspace memberships and roles (owner > admin > member > viewer), pending invites by email,
and the rules: only an owner makes or unmakes owners, and the last owner always stays."""

from __future__ import annotations

import time

from floom_git.errors import Conflict, Forbidden, InvalidInput, NotFound
from floom_git.schemas.rows import MemberRow, UserRow
from floom_git.services.actor import ROLES
from floom_git.services.identity.users import check_email
from floom_git.storage.system_store import SystemStore


def check_role(role: str, field: str = "role") -> str:
    if role not in ROLES:
        raise InvalidInput(f"{field}: must be one of {', '.join(ROLES)}")
    return role


def at_least(role: str | None, needed: str) -> bool:
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


class Members:
    def __init__(self, store: SystemStore) -> None:
        self.store = store
        self.now = time.time

    def role(self, ws_id: str, user: UserRow) -> str | None:
        """The user's role in the workspace; server admins are owners everywhere."""
        if user.is_admin:
            return "owner"
        return self.store.role_of(ws_id, user.id)

    def add(self, ws_id: str, user_id: str, role: str, invited_by: str | None = None) -> MemberRow:
        """Make `user_id` an active member with `role` (replacing an earlier role)."""
        now = self.now()
        row = MemberRow(ws_id, user_id, None, check_role(role), "active", invited_by, now, now)
        self.store.put_member(row)
        return row

    def invite(self, ws_id: str, email: str, role: str, by: str, by_role: str) -> MemberRow:
        """Add the user with this email, or a pending invite taken up when they sign in."""
        email = check_email(email)
        check_role(role)
        if role == "owner" and by_role != "owner":
            raise Forbidden("role: only an owner can invite an owner")
        user = self.store.user_by_login(email)
        now = self.now()
        if user is not None and user.email == email:
            if self.store.member(ws_id, user.id) is not None:
                raise Conflict(f"email: {email} is already a member of {ws_id}")
            row = MemberRow(ws_id, user.id, email, role, "active", by, now, now)
        else:
            if any(m.user_id is None and m.email == email for m in self.store.members(ws_id)):
                raise Conflict(f"email: {email} is already invited to {ws_id}")
            row = MemberRow(ws_id, None, email, role, "pending", by, now, now)
        self.store.put_member(row)
        return row

    def _target(self, ws_id: str, key: str) -> MemberRow:
        for m in self.store.members(ws_id):
            if m.user_id == key or (m.user_id is None and m.email == key.lower()):
                return m
        raise NotFound(f"Member {key[:80]} not found in workspace {ws_id}")

    def set_role(self, ws_id: str, key: str, role: str, by_role: str) -> MemberRow:
        """Change a member's role; 403 for owner changes by non-owners, 409 for the last owner."""
        check_role(role)
        target = self._target(ws_id, key)
        if (target.role == "owner" or role == "owner") and by_role != "owner":
            raise Forbidden("role: only an owner can make or change an owner")
        outcome = self.store.change_member(ws_id, key, role, self.now())
        if outcome == "last_owner":
            raise Conflict("role: the last owner of a workspace cannot be demoted")
        return self._target(ws_id, key)

    def remove(self, ws_id: str, key: str, by_role: str) -> MemberRow:
        target = self._target(ws_id, key)
        if target.role == "owner" and by_role != "owner":
            raise Forbidden("Only an owner can remove an owner")
        outcome = self.store.change_member(ws_id, key, None, self.now())
        if outcome == "last_owner":
            raise Conflict("The last owner of a workspace cannot be removed")
        return target

    def list(self, ws_id: str) -> list[tuple[MemberRow, UserRow | None]]:
        return [(m, self.store.user(m.user_id) if m.user_id else None)
                for m in self.store.members(ws_id)]

    def workspaces_of(self, user_id: str) -> dict[str, str]:
        """workspace id -> role of the user's active memberships."""
        return {m.workspace_id: m.role for m in self.store.memberships(user_id)}

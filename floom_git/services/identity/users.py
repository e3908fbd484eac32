"""Local user accounts: creation with validated names and passwords, and password sign-in."""

from __future__ import annotations

import re
import secrets
import sqlite3
import time

from floom_git.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from floom_git.schemas.rows import UserRow
from floom_git.services.identity.passwords import Passwords
from floom_git.storage.system_store import SystemStore

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}\Z")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\Z")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
BAD_LOGIN = "Invalid username or password"


def check_email(email: str, field: str = "email") -> str:
    email = email.strip()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise InvalidInput(f"{field}: '{email[:80]}' is not an email address")
    return email.lower()


def check_password(username: str, password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"password: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if username.lower() in password.lower():
        raise InvalidInput("password: must not contain the user name")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(18)


class Users:
    def __init__(self, store: SystemStore, passwords: Passwords) -> None:
        self.store = store
        self.passwords = passwords

    def create(self, username: str, *, email: str | None = None, password: str | None = None,
               is_admin: bool = False, display_name: str | None = None) -> UserRow:
        """A new user; InvalidInput for a bad name, email or password, Conflict when taken."""
        username = username.strip().lower()
        if not USERNAME_RE.match(username):
            raise InvalidInput(f"username: '{username[:80]}' must be 2-64 characters of lower-case "
                               "letters, digits, '.', '_' or '-', starting with a letter or digit")
        email = check_email(email) if email else None
        pw_hash = self.passwords.hash(check_password(username, password)) if password else None
        row = UserRow(id="usr_" + secrets.token_hex(8), username=username, email=email,
                      display_name=display_name or username, password_hash=pw_hash,
                      is_admin=is_admin, created_at=time.time())
        if self.store.user_by_login(username) or (email and self.store.user_by_login(email)):
            raise Conflict(f"username: a user named {username} or with that email already exists")
        try:
            self.store.add_user(row)
        except sqlite3.IntegrityError:
            raise Conflict(
                f"username: a user named {username} or with that email already exists"
            ) from None
        if email:
            self.store.claim_invites(row.id, email, row.created_at)
        return row

    def get(self, user_id: str) -> UserRow:
        user = self.store.user(user_id)
        if user is None:
            raise NotFound("User not found")
        return user

    def find(self, login: str) -> UserRow:
        user = self.store.user_by_login(login.strip())
        if user is None:
            raise NotFound(f"User {login[:80]} not found")
        return user

    def canonical_login(self, login: str) -> str:
        """One key per person for whatever they type (user name or email, any case): the user
        id, or the folded text when no such user exists. Sign-in limits count on it."""
        user = self.store.user_by_login(login.strip()) if login.strip() else None
        return user.id if user is not None else "?" + login.strip().casefold()[:200]

    def all(self) -> list[UserRow]:
        return self.store.users()

    def login(self, login: str, password: str) -> UserRow:
        """The user whose name (or email) and password match; Unauthenticated otherwise.

        Blocking (argon2): run it in a thread.
        """
        user = self.store.user_by_login(login.strip()) if login.strip() else None
        if user is None:
            self.passwords.burn(password)
            raise Unauthenticated(BAD_LOGIN)
        if not self.passwords.verify(user.id, user.password_hash, password):
            raise Unauthenticated(BAD_LOGIN)
        assert user.password_hash is not None
        if self.passwords.needs_rehash(user.password_hash):
            self.store.set_password_hash(user.id, self.passwords.hash(password))
        if user.email:
            self.store.claim_invites(user.id, user.email, time.time())
        return user

    def set_password(self, user_id: str, password: str) -> None:
        user = self.get(user_id)
        self.store.set_password_hash(
            user.id, self.passwords.hash(check_password(user.username, password))
        )

"""The server-private identity store in system/identity.sqlite3: users, token and session digests,
magic-link nonces, device codes and memberships. SQLite (WAL, synchronous=FULL) so that the
server and the `floom-git` CLI can share it safely; no plaintext credential is ever stored here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from floom_git.schemas.rows import DeviceRow, MemberRow, SessionRow, TokenRow, UserRow

DB_NAME = "identity.sqlite3"
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE COLLATE NOCASE,
  email TEXT UNIQUE COLLATE NOCASE,
  display_name TEXT,
  password_hash TEXT,
  is_admin INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  digest BLOB NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  user_id TEXT NOT NULL,
  workspace_id TEXT,
  role TEXT,
  created_at REAL NOT NULL,
  expires_at REAL,
  last_used_at REAL,
  revoked_at REAL
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_id);
CREATE INDEX IF NOT EXISTS tokens_workspace ON tokens(workspace_id);
CREATE TABLE IF NOT EXISTS sessions (
  digest BLOB PRIMARY KEY,
  user_id TEXT NOT NULL,
  created_at REAL NOT NULL,
  expires_at REAL NOT NULL,
  role_cap TEXT,
  workspace_id TEXT,
  limit_at REAL
);
CREATE TABLE IF NOT EXISTS magic_links (
  digest BLOB PRIMARY KEY,
  user_id TEXT NOT NULL,
  expires_at REAL NOT NULL,
  used_at REAL
);
CREATE TABLE IF NOT EXISTS devices (
  digest BLOB PRIMARY KEY,
  user_code_digest BLOB NOT NULL UNIQUE,
  client_name TEXT NOT NULL,
  status TEXT NOT NULL,
  user_id TEXT,
  created_at REAL NOT NULL,
  expires_at REAL NOT NULL,
  role_cap TEXT,
  workspace_id TEXT,
  limit_at REAL
);
CREATE TABLE IF NOT EXISTS members (
  workspace_id TEXT NOT NULL,
  user_id TEXT,
  email TEXT COLLATE NOCASE,
  role TEXT NOT NULL,
  status TEXT NOT NULL,
  invited_by TEXT,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS members_user ON members(workspace_id, user_id)
  WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS members_email ON members(workspace_id, email)
  WHERE user_id IS NULL;
"""
# Columns added after version 1: what a session or an approved device code may pass on (the
# grant of the credential it came from; limit_at is that credential's expiry).
ADDED_COLUMNS = {
    "sessions": ("role_cap TEXT", "workspace_id TEXT", "limit_at REAL"),
    "devices": ("role_cap TEXT", "workspace_id TEXT", "limit_at REAL"),
}


_TOKEN_COLS = (
    "id, kind, name, user_id, workspace_id, role, created_at, expires_at, last_used_at, revoked_at"
)
_USER_COLS = "id, username, email, display_name, password_hash, is_admin, created_at"


def _insert_token(conn: sqlite3.Connection, digest: bytes, token: TokenRow) -> None:
    conn.execute(f"INSERT INTO tokens (digest, {_TOKEN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (digest, *dataclasses.astuple(token)))
_MEMBER_COLS = "workspace_id, user_id, email, role, status, invited_by, created_at, updated_at"


def _user(row: sqlite3.Row | None) -> UserRow | None:
    return None if row is None else UserRow(row[0], row[1], row[2], row[3], row[4], bool(row[5]),
                                            row[6])


class SystemStore:
    """Typed reads and serialised, durable writes over the identity database.

    Each thread gets its own connection (WAL lets readers run while a writer commits); writes
    take a process-wide lock plus SQLite's own write lock, so the CLI can write concurrently.
    """

    def __init__(self, system_dir: Path) -> None:
        system_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(system_dir, 0o700)  # it may have been made earlier with the umask's mode
        self.path = system_dir / DB_NAME
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # Bumped by every write this process commits: in-memory caches drop what they hold.
        self.generation = 0
        with self.transaction() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                for table, columns in ADDED_COLUMNS.items():
                    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                    for column in columns:
                        if column.split()[0] not in have:
                            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: committed on success, rolled back on any exception."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self.generation += 1

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn().execute(sql, params).fetchone()

    # -- users ----------------------------------------------------------------------------
    def add_user(self, user: UserRow) -> None:
        with self.transaction() as conn:
            conn.execute(f"INSERT INTO users ({_USER_COLS}) VALUES (?,?,?,?,?,?,?)",
                         (user.id, user.username, user.email, user.display_name,
                          user.password_hash, int(user.is_admin), user.created_at))

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

    def user(self, user_id: str) -> UserRow | None:
        return _user(self._one(f"SELECT {_USER_COLS} FROM users WHERE id = ?", (user_id,)))

    def user_by_login(self, login: str) -> UserRow | None:
        """A user by username or email (case-insensitive)."""
        return _user(self._one(f"SELECT {_USER_COLS} FROM users WHERE username = ? OR email = ?",
                               (login, login)))

    def users(self) -> list[UserRow]:
        return [
            u
            for u in map(_user, self._all(f"SELECT {_USER_COLS} FROM users ORDER BY username"))
            if u is not None
        ]

    # -- tokens ---------------------------------------------------------------------------
    def add_token(self, token: TokenRow, digest: bytes) -> None:
        with self.transaction() as conn:
            _insert_token(conn, digest, token)

    def token_by_digest(self, digest: bytes) -> TokenRow | None:
        row = self._one(f"SELECT {_TOKEN_COLS} FROM tokens WHERE digest = ?", (digest,))
        return None if row is None else TokenRow(*row)

    def token(self, token_id: str) -> TokenRow | None:
        row = self._one(f"SELECT {_TOKEN_COLS} FROM tokens WHERE id = ?", (token_id,))
        return None if row is None else TokenRow(*row)

    def tokens(self, *, user_id: str | None = None, workspace_id: str | None = None,
               kinds: Sequence[str] = ()) -> list[TokenRow]:
        where, params = [], []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if workspace_id is not None:
            where.append("workspace_id = ?")
            params.append(workspace_id)
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        sql = f"SELECT {_TOKEN_COLS} FROM tokens"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [TokenRow(*r) for r in self._all(sql + " ORDER BY created_at, id", params)]

    def revoke_token(self, token_id: str, at: float) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, token_id),
            )
            return cur.rowcount == 1

    def touch_tokens(self, used: dict[str, float]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                [(at, tid) for tid, at in used.items()])

    # -- sessions -------------------------------------------------------------------------
    def add_session(self, digest: bytes, user_id: str, created_at: float, expires_at: float,
                    role_cap: str | None = None, workspace_id: str | None = None,
                    limit_at: float | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (created_at,))
            conn.execute(
                "INSERT INTO sessions (digest, user_id, created_at, expires_at, role_cap, "
                "workspace_id, limit_at) VALUES (?,?,?,?,?,?,?)",
                (digest, user_id, created_at, expires_at, role_cap, workspace_id, limit_at),
            )

    def session(self, digest: bytes) -> SessionRow | None:
        row = self._one(
            "SELECT user_id, expires_at, role_cap, workspace_id, limit_at FROM sessions "
            "WHERE digest = ?",
            (digest,),
        )
        return None if row is None else SessionRow(*row)

    def delete_session(self, digest: bytes) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM sessions WHERE digest = ?", (digest,)).rowcount == 1

    # -- magic links ----------------------------------------------------------------------
    def add_magic_link(self, digest: bytes, user_id: str, expires_at: float, now: float) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM magic_links WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO magic_links VALUES (?,?,?,NULL)", (digest, user_id, expires_at)
            )

    def use_magic_link(self, digest: bytes, now: float) -> str | None:
        """Mark the nonce used once; the user id, or None when unknown, used or expired."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE magic_links SET used_at = ? WHERE digest = ? AND used_at IS NULL "
                "AND expires_at >= ?", (now, digest, now))
            if cur.rowcount != 1:
                return None
            user_id: str = conn.execute("SELECT user_id FROM magic_links WHERE digest = ?",
                                        (digest,)).fetchone()[0]
            return user_id

    # -- device codes ---------------------------------------------------------------------
    def add_device(self, digest: bytes, user_code_digest: bytes, client_name: str, now: float,
                   expires_at: float) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM devices WHERE expires_at < ?", (now - 86400,))
            conn.execute("INSERT INTO devices (digest, user_code_digest, client_name, status, "
                         "user_id, created_at, expires_at) VALUES (?,?,?,'pending',NULL,?,?)",
                         (digest, user_code_digest, client_name, now, expires_at))

    def device(self, digest: bytes) -> DeviceRow | None:
        row = self._one("SELECT client_name, status, user_id, created_at, expires_at, role_cap, "
                        "workspace_id, limit_at FROM devices WHERE digest = ?", (digest,))
        return None if row is None else DeviceRow(*row)

    def decide_device(self, user_code_digest: bytes, status: str, user_id: str, now: float,
                      role_cap: str | None = None, workspace_id: str | None = None,
                      limit_at: float | None = None) -> str:
        """Approve or deny a pending, unexpired code: 'ok', 'unknown', 'expired' or the status it
        has. An approval records the approving credential's grant (cap, workspace, expiry)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT status, expires_at FROM devices WHERE user_code_digest = ?",
                               (user_code_digest,)).fetchone()
            if row is None:
                return "unknown"
            if row[1] < now:
                return "expired"
            if row[0] != "pending":
                return str(row[0])
            conn.execute(
                "UPDATE devices SET status = ?, user_id = ?, role_cap = ?, workspace_id = ?, "
                "limit_at = ? WHERE user_code_digest = ?",
                (status, user_id, role_cap, workspace_id, limit_at, user_code_digest),
            )
            return "ok"

    def exchange_device(self, digest: bytes, token: TokenRow | None, token_digest: bytes) -> None:
        """Mark an approved device code exchanged and store its token, in one transaction."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE devices SET status = 'exchanged' WHERE digest = ? "
                               "AND status = 'approved'", (digest,))
            if cur.rowcount != 1 or token is None:
                raise LookupError("device code is no longer approved")
            _insert_token(conn, token_digest,
                          dataclasses.replace(token, last_used_at=None, revoked_at=None))

    # -- memberships ----------------------------------------------------------------------
    def member(self, workspace_id: str, user_id: str) -> MemberRow | None:
        row = self._one(
            f"SELECT {_MEMBER_COLS} FROM members WHERE workspace_id = ? AND user_id = ?",
            (workspace_id, user_id),
        )
        return None if row is None else MemberRow(*row)

    def role_of(self, workspace_id: str, user_id: str) -> str | None:
        row = self._one("SELECT role FROM members WHERE workspace_id = ? AND user_id = ? "
                        "AND status = 'active'", (workspace_id, user_id))
        return None if row is None else row[0]

    def members(self, workspace_id: str) -> list[MemberRow]:
        return [MemberRow(*r) for r in self._all(
            f"SELECT {_MEMBER_COLS} FROM members WHERE workspace_id = ? ORDER BY created_at, rowid",
            (workspace_id,))]

    def memberships(self, user_id: str) -> list[MemberRow]:
        return [MemberRow(*r) for r in self._all(
            f"SELECT {_MEMBER_COLS} FROM members WHERE user_id = ? AND status = 'active' "
            "ORDER BY workspace_id", (user_id,))]

    def put_member(self, row: MemberRow) -> None:
        """Insert or replace the membership of (workspace, user) or (workspace, pending email)."""
        with self.transaction() as conn:
            if row.user_id is not None:
                conn.execute("DELETE FROM members WHERE workspace_id = ? AND user_id = ?",
                             (row.workspace_id, row.user_id))
            else:
                conn.execute("DELETE FROM members WHERE workspace_id = ? AND user_id IS NULL "
                             "AND email = ?", (row.workspace_id, row.email))
            conn.execute(f"INSERT INTO members ({_MEMBER_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                         (row.workspace_id, row.user_id, row.email, row.role, row.status,
                          row.invited_by, row.created_at, row.updated_at))

    def change_member(self, workspace_id: str, key: str, role: str | None, now: float) -> str:
        """Set the role of (or with role None remove) a member, keeping at least one owner.

        `key` is a user id or a pending invite's email. Returns 'ok', 'unknown' or 'last_owner'.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT rowid, role, status FROM members WHERE workspace_id = ? AND "
                "(user_id = ? OR (user_id IS NULL AND email = ?))",
                (workspace_id, key, key)).fetchone()
            if row is None:
                return "unknown"
            if row[1] == "owner" and row[2] == "active" and role != "owner":
                owners = conn.execute(
                    "SELECT COUNT(*) FROM members WHERE workspace_id = ? AND "
                    "role = 'owner' AND status = 'active'",
                    (workspace_id,),
                ).fetchone()[0]
                if owners <= 1:
                    return "last_owner"
            if role is None:
                conn.execute("DELETE FROM members WHERE rowid = ?", (row[0],))
            else:
                conn.execute("UPDATE members SET role = ?, updated_at = ? WHERE rowid = ?",
                             (role, now, row[0]))
            return "ok"

    def claim_invites(self, user_id: str, email: str, now: float) -> int:
        """Turn pending invites for `email` into active memberships of `user_id`."""
        with self.transaction() as conn:
            rows = conn.execute("SELECT rowid, workspace_id FROM members WHERE user_id IS NULL "
                                "AND email = ?", (email,)).fetchall()
            for rowid, ws_id in rows:
                exists = conn.execute(
                    "SELECT 1 FROM members WHERE workspace_id = ? AND user_id = ?", (ws_id, user_id)
                ).fetchone()
                if exists:
                    conn.execute("DELETE FROM members WHERE rowid = ?", (rowid,))
                else:
                    conn.execute(
                        "UPDATE members SET user_id = ?, status = 'active', updated_at = ? "
                        "WHERE rowid = ?",
                        (user_id, now, rowid),
                    )
            return len(rows)

    def drop_workspace(self, workspace_id: str) -> list[str]:
        """Forget the memberships, invites, bound tokens, sessions and device approvals of a
        deleted workspace (its internal id); the ids of the tokens removed."""
        with self.transaction() as conn:
            gone = [r[0] for r in conn.execute("SELECT id FROM tokens WHERE workspace_id = ?",
                                               (workspace_id,))]
            conn.execute("DELETE FROM members WHERE workspace_id = ?", (workspace_id,))
            conn.execute("DELETE FROM tokens WHERE workspace_id = ?", (workspace_id,))
            conn.execute("DELETE FROM sessions WHERE workspace_id = ?", (workspace_id,))
            conn.execute("DELETE FROM devices WHERE workspace_id = ?", (workspace_id,))
        return gone

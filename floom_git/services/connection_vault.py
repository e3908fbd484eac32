"""Server-private state of connections in system/connections/ (never in a repository): OAuth
tokens sealed with the server key (AES-256-GCM, as workspace secrets are), pending sign-ins
(the PKCE verifier, found by a digest of the `state`), each connection's status and last test,
and the recent tool calls each connection served."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from floom_git.services.secrets import load_or_create_key
from floom_git.storage import private

KEEP_CALLS = 200
PENDING_FILE = "pending.json"


@dataclass(frozen=True)
class Pending:
    """A sign-in started by POST /connections and not finished yet."""

    ws_id: str
    conn_id: str
    code_verifier: str
    redirect_uri: str
    expires_at: float


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class ConnectionVault:
    def __init__(self, system_dir: Path) -> None:
        self._dir = system_dir / "connections"
        self._aead = AESGCM(load_or_create_key(system_dir))
        self._lock = threading.Lock()

    # -- sealing --------------------------------------------------------------------------
    def _seal(self, aad: str, value: dict[str, Any]) -> dict[str, str]:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, json.dumps(value).encode(), aad.encode())
        return {
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(sealed).decode(),
        }

    def _open(self, aad: str, item: dict[str, str]) -> dict[str, Any] | None:
        try:
            plain = self._aead.decrypt(base64.b64decode(item["nonce"]),
                                       base64.b64decode(item["ciphertext"]), aad.encode())
        except (KeyError, ValueError, InvalidTag):
            return None  # another server key, or a damaged file: as if never stored
        value = json.loads(plain)
        return value if isinstance(value, dict) else None

    # -- per-connection state -------------------------------------------------------------
    def _file(self, ws_id: str, kind: str = "state") -> Path:
        return self._dir / f"{ws_id}.{kind}.json"

    def state(self, ws_id: str, conn_id: str) -> dict[str, Any]:
        """status, status_detail, updated_at, expires_at, last_test (no credential)."""
        item = private.read_json(self._file(ws_id)).get(conn_id)
        if not isinstance(item, dict):
            return {}
        return {k: v for k, v in item.items() if k != "tokens"}

    def set_state(self, ws_id: str, conn_id: str, **fields: Any) -> None:
        with self._lock:
            data = private.read_json(self._file(ws_id))
            item = data.setdefault(conn_id, {})
            item.update(fields)
            item["updated_at"] = time.time()
            private.write_json(self._file(ws_id), data)

    def tokens(self, ws_id: str, conn_id: str) -> dict[str, Any] | None:
        item = private.read_json(self._file(ws_id)).get(conn_id)
        sealed = item.get("tokens") if isinstance(item, dict) else None
        return self._open(f"{ws_id}/{conn_id}", sealed) if isinstance(sealed, dict) else None

    def put_tokens(self, ws_id: str, conn_id: str, token: dict[str, Any]) -> None:
        """Store an OAuth token response; the connection becomes active."""
        expires_at = token.get("expires_at")
        with self._lock:
            data = private.read_json(self._file(ws_id))
            data[conn_id] = {
                **(data.get(conn_id) or {}),
                "tokens": self._seal(f"{ws_id}/{conn_id}", token),
                "status": "active",
                "status_detail": None,
                "expires_at": expires_at,
                "updated_at": time.time(),
            }
            private.write_json(self._file(ws_id), data)

    def drop(self, ws_id: str, conn_id: str) -> None:
        """Forget everything of a deleted connection (its tokens and its calls)."""
        with self._lock:
            for kind in ("state", "activity"):
                data = private.read_json(self._file(ws_id, kind))
                if data.pop(conn_id, None) is not None:
                    private.write_json(self._file(ws_id, kind), data)
            pending = private.read_json(self._dir / PENDING_FILE)
            kept = {
                k: v
                for k, v in pending.items()
                if v.get("conn_id") != conn_id or v.get("ws_id") != ws_id
            }
            if len(kept) != len(pending):
                private.write_json(self._dir / PENDING_FILE, kept)

    def drop_workspace(self, ws_id: str) -> None:
        """Forget every connection state, token, call and pending sign-in of a deleted workspace."""
        with self._lock:
            for kind in ("state", "activity"):
                self._file(ws_id, kind).unlink(missing_ok=True)
            pending = private.read_json(self._dir / PENDING_FILE)
            kept = {k: v for k, v in pending.items() if v.get("ws_id") != ws_id}
            if len(kept) != len(pending):
                private.write_json(self._dir / PENDING_FILE, kept)

    # -- pending sign-ins -----------------------------------------------------------------
    def begin(self, state: str, pending: Pending) -> None:
        now = time.time()
        with self._lock:
            data = {k: v for k, v in private.read_json(self._dir / PENDING_FILE).items()
                    if v.get("expires_at", 0) > now}
            data[_digest(state)] = {
                "ws_id": pending.ws_id,
                "conn_id": pending.conn_id,
                "redirect_uri": pending.redirect_uri,
                "expires_at": pending.expires_at,
                "verifier": self._seal(_digest(state), {"v": pending.code_verifier}),
            }
            private.write_json(self._dir / PENDING_FILE, data)

    def claim(self, state: str) -> Pending | None:
        """The sign-in `state` names, removed so it is used once; None when unknown or expired."""
        key = _digest(state)
        with self._lock:
            data = private.read_json(self._dir / PENDING_FILE)
            item = data.pop(key, None)
            if item is None:
                return None
            private.write_json(self._dir / PENDING_FILE, data)
        verifier = self._open(key, item.get("verifier") or {})
        if verifier is None or item.get("expires_at", 0) <= time.time():
            return None
        return Pending(item["ws_id"], item["conn_id"], verifier["v"], item["redirect_uri"],
                       item["expires_at"])

    # -- activity -------------------------------------------------------------------------
    def record_call(self, ws_id: str, conn_id: str, call: dict[str, Any]) -> None:
        with self._lock:
            data = private.read_json(self._file(ws_id, "activity"))
            data[conn_id] = ([call] + list(data.get(conn_id) or []))[:KEEP_CALLS]
            private.write_json(self._file(ws_id, "activity"), data)

    def calls(self, ws_id: str, conn_id: str) -> list[dict[str, Any]]:
        """The latest calls, newest first."""
        items = private.read_json(self._file(ws_id, "activity")).get(conn_id)
        return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []

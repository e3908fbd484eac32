"""Workspace secrets, encrypted at rest in system/secrets/<workspace>.json with AES-256-GCM under
a server key (system/server.key, mode 600) that never enters a repository. Values are only ever
decrypted to hand them to a run; the API lists names and status, never values."""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from floom_git.errors import InvalidInput, NotFound
from floom_git.schemas.manifest import SECRET_NAME_WORDS
from floom_git.storage import private

NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}\Z")
RESERVED = {"PATH", "HOME", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME",
            "NODE_OPTIONS", "SHELL", "USER", "LANG", "TZ", "PWD", "TMPDIR"}
PLATFORM = {"FLOOM_SECRET", "WORKEROS_SHARED_SECRET_ROLE", "FLOOM_DATA_DIR"}
MAX_VALUE = 32 * 1024


def load_or_create_key(system_dir: Path, name: str = "server.key") -> bytes:
    system_dir.mkdir(parents=True, exist_ok=True)
    path = system_dir / name
    if path.exists():
        return base64.b64decode(path.read_bytes())
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(key))
    return key


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidInput(f"secret name '{name[:64]}': expected {SECRET_NAME_WORDS}")
    if name in RESERVED or name in PLATFORM:
        raise InvalidInput(f"secret name '{name}' is reserved")
    return name


class SecretStore:
    """Encrypted secret values per workspace, keyed by the workspace's internal id
    (`Workspace.uid`)."""

    def __init__(self, system_dir: Path) -> None:
        self._dir = system_dir / "secrets"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(load_or_create_key(system_dir))
        self._lock = threading.Lock()

    def _file(self, ws_id: str) -> Path:
        return self._dir / f"{ws_id}.json"

    def _load(self, ws_id: str) -> dict[str, dict[str, Any]]:
        return private.read_json(self._file(ws_id))

    def _save(self, ws_id: str, data: dict[str, dict[str, Any]]) -> None:
        private.write_json(self._file(ws_id), data)

    def set(self, ws_id: str, name: str, value: str, user_id: str) -> None:
        check_name(name)
        if not value or len(value.encode()) > MAX_VALUE:
            raise InvalidInput(f"value: must be 1 to {MAX_VALUE} bytes")
        if any(ord(c) < 32 and c not in "\t" for c in value):
            raise InvalidInput("value: control characters are not allowed")
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), f"{ws_id}/{name}".encode())
        with self._lock:
            data = self._load(ws_id)
            data[name] = {"nonce": base64.b64encode(nonce).decode(),
                          "ciphertext": base64.b64encode(sealed).decode(),
                          "updated_by": user_id, "updated_at": time.time()}
            self._save(ws_id, data)

    def delete(self, ws_id: str, name: str) -> None:
        with self._lock:
            data = self._load(ws_id)
            if name not in data:
                raise NotFound(f"Secret {name} not found")
            del data[name]
            self._save(ws_id, data)

    def drop(self, ws_id: str) -> None:
        """Forget every secret of a deleted workspace."""
        with self._lock:
            self._file(ws_id).unlink(missing_ok=True)

    def names(self, ws_id: str) -> dict[str, dict[str, Any]]:
        """name -> metadata (no values)."""
        return {k: {"updated_by": v.get("updated_by"), "updated_at": v.get("updated_at")}
                for k, v in self._load(ws_id).items()}

    def values(self, ws_id: str, names: list[str]) -> dict[str, str]:
        """Decrypted values of the `names` that are set (for a run's environment only)."""
        data = self._load(ws_id)
        out = {}
        for name in names:
            item = data.get(name)
            if item is None:
                continue
            plain = self._aead.decrypt(
                base64.b64decode(item["nonce"]),
                base64.b64decode(item["ciphertext"]),
                f"{ws_id}/{name}".encode(),
            )
            out[name] = plain.decode()
        return out

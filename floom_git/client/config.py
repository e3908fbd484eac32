"""Where the client keeps its sign-ins (`$XDG_CONFIG_HOME/floom-git/config.json`, mode 0600) and
which server, token and workspace a command uses: flag > environment > stored > default."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floom_git.client.errors import ClientError

DEFAULT_SERVER = "http://localhost:8000"
APP_DIR = "floom-git"
FILE_NAME = "config.json"


def config_dir(environ: Mapping[str, str]) -> Path:
    """XDG base directory rule: $XDG_CONFIG_HOME if set and absolute, else ~/.config."""
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / APP_DIR
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".config" / APP_DIR


def normalise_server(url: str) -> str:
    """`host:8000`, `http://host:8000/` and `http://host:8000/api` all name the same server."""
    url = url.strip().rstrip("/")
    if not url:
        raise ClientError("server: an empty URL; pass --server http://HOST:PORT")
    if "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"server: '{url}' is not an http(s) URL")
    for suffix in ("/api/v1", "/api"):
        url = url.removesuffix(suffix)
    return url


class Store:
    """The config file: `{"default_server": url, "servers": {url: {token, token_id, user,
    workspace}}}`. Written atomically, readable by its owner only (it holds tokens)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"servers": {}}
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
            raise ClientError(
                f"{self.path}: not a floom-git config file; remove it and log in again"
            )
        data.setdefault("servers", {})
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-", dir=self.directory)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def server_entry(self, server: str) -> dict[str, Any]:
        entry = self.load()["servers"].get(server)
        return dict(entry) if isinstance(entry, dict) else {}

    def update_server(self, server: str, *, default: bool = False, **fields: Any) -> None:
        """Set (or with None, remove) fields of one server's entry."""
        data = self.load()
        entry = dict(data["servers"].get(server) or {})
        for key, value in fields.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        if entry:
            data["servers"][server] = entry
        else:
            data["servers"].pop(server, None)
        if default:
            data["default_server"] = server
        self.save(data)


@dataclass(frozen=True)
class Target:
    """The server a command talks to, the credential it sends and the workspace it acts in."""

    server: str
    token: str | None
    workspace: str | None
    token_source: str  # "FLOOM_TOKEN", the config file's path, or "none"


def resolve(environ: Mapping[str, str], store: Store, *, server: str | None = None,
            workspace: str | None = None) -> Target:
    data = store.load()
    chosen = server or environ.get("FLOOM_URL") or data.get("default_server") or DEFAULT_SERVER
    url = normalise_server(chosen)
    entry = data["servers"].get(url) or {}
    token, source = environ.get("FLOOM_TOKEN") or None, "FLOOM_TOKEN"
    if token is None:
        token, source = entry.get("token"), str(store.path)
    ws = workspace or environ.get("FLOOM_WORKSPACE") or entry.get("workspace") or None
    return Target(server=url, token=token, workspace=ws, token_source=source if token else "none")

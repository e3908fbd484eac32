"""Run-scoped tokens: the one credential a remote executor holds for one attempt of one run. It
may fetch that run's workspace over git (read-only) and report that run (claim, heartbeat, logs,
artifacts, result), nothing else; it ends with the run. Its grant is derived from the workspace
(grants.derive: viewer, bound to the workspace, expiring), so it never carries more than that.
Held in memory as HMAC digests only: a home node that restarts fails its running runs anyway."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from floom_git.errors import Unauthenticated
from floom_git.services.identity.grants import Grant, derive

PREFIX = "floomrun_"  # never the prefix of an API token or the generated shared secret


@dataclass(frozen=True)
class RunGrant:
    workspace_uid: str
    run_id: str
    attempt: int
    grant: Grant


def looks_like_run_token(value: str) -> bool:
    return value.startswith(PREFIX)


class RunTokens:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._live: dict[bytes, RunGrant] = {}
        self._by_run: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.now = time.time

    def _digest(self, value: str) -> bytes:
        return hmac.digest(self._key, value.encode(), hashlib.sha256)

    def mint(self, workspace_uid: str, run_id: str, attempt: int, expires_at: float) -> str:
        """A token for attempt `attempt` of run `run_id`; the run's earlier token stops working."""
        grant = derive(Grant(workspace_id=workspace_uid), role="viewer", expires_at=expires_at)
        value = PREFIX + secrets.token_urlsafe(32)
        digest = self._digest(value)
        with self._lock:
            old = self._by_run.pop(run_id, None)
            if old is not None:
                self._live.pop(old, None)
            self._live[digest] = RunGrant(workspace_uid, run_id, attempt, grant)
            self._by_run[run_id] = digest
        return value

    def resolve(self, value: str) -> RunGrant:
        """The grant of a live run token; Unauthenticated when unknown, revoked or expired."""
        with self._lock:
            found = self._live.get(self._digest(value))
        if found is None:
            raise Unauthenticated("Invalid credentials: the run token is unknown or its run has "
                                  "ended")
        if found.grant.expires_at is not None and found.grant.expires_at <= self.now():
            raise Unauthenticated("Run token expired")
        return found

    def revoke(self, run_id: str) -> None:
        with self._lock:
            digest = self._by_run.pop(run_id, None)
            if digest is not None:
                self._live.pop(digest, None)

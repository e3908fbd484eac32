"""Browser sessions (the `floom_session` cookie), one-time magic sign-in links and the CLI device
flow. Every secret handed out is random; only its HMAC digest is stored. Each carries the grant
(role cap, workspace, expiry) of the credential it came from, and passes it on."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time

from floom_git.errors import Forbidden, InvalidInput, Unauthenticated
from floom_git.schemas.rows import SessionRow
from floom_git.services.identity.cache import ReadCache
from floom_git.services.identity.grants import UNLIMITED, Grant, earliest
from floom_git.storage.system_store import SystemStore

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels (no words), no look-alikes
MAX_MAGIC_LEN = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AuthorizationPending(InvalidInput):
    """A device code nobody has approved yet: the client polls again (RFC 8628's
    authorization_pending, as a 400)."""

    code = "authorization_pending"


class Keyed:
    """HMAC-SHA256 under the server pepper, with a label per use so digests never collide."""

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def digest(self, label: str, value: str) -> bytes:
        return hmac.digest(self._pepper, f"{label}\0{value}".encode(), hashlib.sha256)


class Sessions:
    def __init__(self, store: SystemStore, keyed: Keyed, ttl_seconds: int) -> None:
        self.store = store
        self._keyed = keyed
        self.ttl = ttl_seconds
        self._cache: ReadCache[SessionRow] = ReadCache(store)
        self.now = time.time

    def create(self, user_id: str, grant: Grant = UNLIMITED) -> str:
        """A new session for `user_id` limited by `grant` (it ends no later than the grant);
        the cookie value (shown once)."""
        value = secrets.token_urlsafe(32)
        now = self.now()
        self.store.add_session(self._keyed.digest("session", value), user_id, now,
                               earliest(now + self.ttl, grant.expires_at) or now + self.ttl,
                               grant.role_cap, grant.workspace_id, grant.expires_at)
        return value

    def expires_at(self, grant: Grant) -> float:
        """When a session created now with `grant` ends."""
        return earliest(self.now() + self.ttl, grant.expires_at) or self.now() + self.ttl

    def resolve(self, value: str) -> SessionRow:
        """The live session; Unauthenticated when unknown or expired."""
        digest = self._keyed.digest("session", value)
        found = self._cache.get(digest)
        if found is None and value:
            found = self.store.session(digest)
            if found is not None:
                self._cache.put(digest, found)
        if found is None:
            raise Unauthenticated("Session not found; sign in again")
        if found.expires_at <= self.now():
            raise Unauthenticated("Session expired; sign in again")
        return found

    def end(self, value: str) -> bool:
        return self.store.delete_session(self._keyed.digest("session", value))


class MagicLinks:
    """`b64url({u, n, e, r?, w?, x?}).b64url(hmac)`: signed, short-lived, one-time through a
nonce table; r, w and x are the role cap, workspace and expiry the link's session inherits."""

    def __init__(self, store: SystemStore, keyed: Keyed, ttl_seconds: int) -> None:
        self.store = store
        self._keyed = keyed
        self.ttl = ttl_seconds
        self.now = time.time

    def _sign(self, payload: str) -> str:
        return _b64(self._keyed.digest("magic-link", payload))

    def issue(self, user_id: str, grant: Grant = UNLIMITED) -> str:
        nonce = secrets.token_urlsafe(16)
        now = self.now()
        expires = int(now + self.ttl)
        fields: dict[str, object] = {"u": user_id, "n": nonce, "e": expires}
        for key, value in (
            ("r", grant.role_cap),
            ("w", grant.workspace_id),
            ("x", grant.expires_at),
        ):
            if value is not None:
                fields[key] = value
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        self.store.add_magic_link(self._keyed.digest("magic-nonce", nonce), user_id, expires, now)
        return f"{payload}.{self._sign(payload)}"

    def consume(self, token: str) -> tuple[str, Grant]:
        """The user the link signs in and the grant its session inherits; Unauthenticated when
        forged, expired or used before."""
        payload, _, sig = token.partition(".")
        # a real link is ASCII; compare_digest and the digest refuse other text (500, not 401)
        if not payload or not sig or len(token) > MAX_MAGIC_LEN or not token.isascii():
            raise Unauthenticated("Invalid magic link")
        if not hmac.compare_digest(sig, self._sign(payload)):
            raise Unauthenticated("Invalid magic link")
        try:
            data = json.loads(_unb64(payload))
            user_id, nonce, expires = str(data["u"]), str(data["n"]), float(data["e"])
            grant = Grant(role_cap=data.get("r"), workspace_id=data.get("w"),
                          expires_at=float(data["x"]) if data.get("x") is not None else None)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise Unauthenticated("Invalid magic link") from None
        now = self.now()
        if expires < now:
            raise Unauthenticated("Magic link expired")
        used_by = self.store.use_magic_link(self._keyed.digest("magic-nonce", nonce), now)
        if used_by is None or used_by != user_id:
            raise Unauthenticated("Magic link was already used")
        return user_id, grant


class Devices:
    """The CLI device flow: start → a signed-in user approves the user code → exchange once."""

    def __init__(self, store: SystemStore, keyed: Keyed, ttl_seconds: int) -> None:
        self.store = store
        self._keyed = keyed
        self.ttl = ttl_seconds
        self.now = time.time

    @staticmethod
    def normalise(user_code: str) -> str:
        code = "".join(ch for ch in user_code.upper() if ch.isalnum())
        if len(code) != 8 or any(ch not in USER_CODE_ALPHABET for ch in code):
            raise InvalidInput("user_code: expected 8 letters like BCDF-GHJK")
        return code

    def device_digest(self, device_code: str) -> bytes:
        return self._keyed.digest("device", device_code)

    def start(self, client_name: str) -> tuple[str, str]:
        """(device_code, user_code) of a new pending request."""
        client_name = (client_name or "floom-cli").strip()[:100] or "floom-cli"
        device_code = secrets.token_urlsafe(32)
        code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        now = self.now()
        self.store.add_device(
            self.device_digest(device_code),
            self._keyed.digest("user-code", code),
            client_name,
            now,
            now + self.ttl,
        )
        return device_code, f"{code[:4]}-{code[4:]}"

    def decide(self, user_code: str, user_id: str, approve: bool, grant: Grant = UNLIMITED) -> None:
        """Approve (or deny) a pending code as `user_id` holding `grant` (the token the device
        gets inherits it); InvalidInput if unknown or expired."""
        code = self.normalise(user_code)
        outcome = self.store.decide_device(self._keyed.digest("user-code", code),
                                           "approved" if approve else "denied", user_id, self.now(),
                                           grant.role_cap, grant.workspace_id, grant.expires_at)
        if outcome == "unknown":
            raise InvalidInput("user_code: unknown code; start the sign-in again")
        if outcome == "expired":
            raise InvalidInput("user_code: the code expired; start the sign-in again")
        if outcome != "ok":
            raise InvalidInput(f"user_code: the code was already {outcome}")

    def approved_user(self, device_code: str) -> tuple[str, Grant]:
        """The approving user of an approved, unexpired device code and the grant of the
        credential that approved it, or the reason it is not."""
        row = self.store.device(self.device_digest(device_code)) if device_code else None
        if row is None:
            raise InvalidInput("device_code: unknown device code")
        if row.status == "exchanged":
            raise InvalidInput("device_code: already exchanged for a token")
        if row.status == "denied":
            raise Forbidden("device_code: the sign-in request was denied")
        if row.expires_at < self.now():
            raise InvalidInput("device_code: expired; start the sign-in again")
        if row.status == "pending":
            raise AuthorizationPending("device_code: authorization pending; approve the user "
                                       "code first")
        assert row.user_id is not None
        return row.user_id, Grant(row.role_cap, row.limit_at, row.workspace_id)

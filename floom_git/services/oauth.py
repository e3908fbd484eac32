"""OAuth 2 sign-in of app connections with authlib: the authorization-code flow with PKCE (S256),
the code exchange when the provider redirects back, and access tokens refreshed (with the stored
refresh token) when they are about to expire. Tokens live sealed in the connection vault; every
request to a provider goes through the guarded egress client."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from floom_git.errors import Conflict, InvalidInput
from floom_git.schemas.connections import ConnectionEntry, OAuthDone, OAuthStarted
from floom_git.schemas.integrations import CatalogApp
from floom_git.services.connection_vault import ConnectionVault, Pending
from floom_git.services.integrations import client_secret_names
from floom_git.services.secrets import SecretStore
from floom_git.services.tenancy import iso

if TYPE_CHECKING:  # authlib is imported by the first sign-in, not at start-up
    from authlib.integrations.httpx_client import AsyncOAuth2Client

LEEWAY = 60  # refresh a token this many seconds before it expires
_locks: dict[tuple[str, str], asyncio.Lock] = {}


def client_credentials(app: CatalogApp, ws_id: str, store: SecretStore) -> tuple[str, str]:
    """(client id, client secret): the operator's, else the workspace's secrets. Conflict naming
    what to set when there is neither."""
    assert app.oauth is not None
    if app.oauth.client_id and app.oauth.client_secret:
        return app.oauth.client_id, app.oauth.client_secret
    id_name, secret_name = client_secret_names(app.slug)
    values = store.values(ws_id, [id_name, secret_name])
    if id_name in values and secret_name in values:
        return values[id_name], values[secret_name]
    raise Conflict(f"App {app.slug} has no OAuth client configured: set the workspace secrets "
                   f"{id_name} and {secret_name} (or client_id and client_secret for it in "
                   "system/integrations.yml)")


def start(vault: ConnectionVault, store: SecretStore, ws_id: str, entry: ConnectionEntry,
          app: CatalogApp, redirect_uri: str, ttl: int) -> OAuthStarted:
    """The provider's authorization URL for a new sign-in (state and PKCE verifier kept)."""
    from authlib.common.security import generate_token
    from authlib.oauth2.client import OAuth2Client

    assert app.oauth is not None
    client_id, _ = client_credentials(app, ws_id, store)
    scopes = entry.scopes if entry.scopes is not None else app.oauth.scopes
    client = OAuth2Client(None, client_id=client_id, redirect_uri=redirect_uri,
                          scope=" ".join(scopes) or None, code_challenge_method="S256")
    verifier = generate_token(64)
    url, state = client.create_authorization_url(app.oauth.authorize_url, code_verifier=verifier,
                                                 **app.oauth.extra_params)
    expires = time.time() + ttl
    vault.begin(state, Pending(ws_id, entry.id, verifier, redirect_uri, expires))
    vault.set_state(ws_id, entry.id, status="pending", status_detail="waiting for the sign-in")
    return OAuthStarted(connection_id=entry.id, status="pending", authorization_url=url,
                        expires_at=iso(expires))


def _client(app: CatalogApp, client_id: str, client_secret: str, allow_private: bool,
            **kwargs: Any) -> AsyncOAuth2Client:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from floom_git.services import egress_client

    assert app.oauth is not None
    return egress_client.http_client(allow_private, client_class=AsyncOAuth2Client,
                                     client_id=client_id, client_secret=client_secret,
                                     token_endpoint_auth_method=app.oauth.token_auth,
                                     token_endpoint=app.oauth.token_url, leeway=LEEWAY,
                                     **kwargs)


def _problem(exc: Exception) -> str:
    from authlib.integrations.base_client import OAuthError

    if isinstance(exc, OAuthError):
        return f"{exc.error}: {exc.description}" if exc.description else str(exc.error)
    return f"{type(exc).__name__}: {exc}"[:300]


async def finish(vault: ConnectionVault, store: SecretStore, pending: Pending, app: CatalogApp,
                 code: str, allow_private: bool) -> OAuthDone:
    """Exchange the authorization code for tokens (with the PKCE verifier) and store them; the
    connection turns active. Conflict (status error) when the provider refuses."""
    assert app.oauth is not None
    client_id, client_secret = client_credentials(app, pending.ws_id, store)
    try:
        async with _client(app, client_id, client_secret, allow_private,
                           redirect_uri=pending.redirect_uri) as client:
            token = await client.fetch_token(app.oauth.token_url, grant_type="authorization_code",
                                             code=code, code_verifier=pending.code_verifier)
    except Exception as exc:  # noqa: BLE001 - any provider or network failure ends the sign-in
        detail = f"the token exchange failed: {_problem(exc)}"
        await asyncio.to_thread(vault.set_state, pending.ws_id, pending.conn_id, status="error",
                                status_detail=detail)
        raise Conflict(f"Connection {pending.conn_id}: {detail}") from None
    if not token.get("access_token"):
        raise Conflict(f"Connection {pending.conn_id}: the provider returned no access token")
    await asyncio.to_thread(vault.put_tokens, pending.ws_id, pending.conn_id, dict(token))
    return OAuthDone(connection_id=pending.conn_id, workspace_id=pending.ws_id, status="active")


async def fail(
    vault: ConnectionVault, pending: Pending, error: str, description: str | None
) -> None:
    detail = f"the provider refused the sign-in: {error}" + (
        f" ({description})" if description else ""
    )
    await asyncio.to_thread(vault.set_state, pending.ws_id, pending.conn_id, status="error",
                            status_detail=detail[:500])
    raise InvalidInput(f"Connection {pending.conn_id}: {detail[:500]}")


async def access_token(vault: ConnectionVault, store: SecretStore, ws_id: str,
                       entry: ConnectionEntry, app: CatalogApp, allow_private: bool) -> str:
    """A current access token of the connection, refreshed first when it is (about to be)
    expired. Conflict when it is not signed in or the refresh is refused (status error)."""
    lock = _locks.setdefault((ws_id, entry.id), asyncio.Lock())
    async with lock:
        token = await asyncio.to_thread(vault.tokens, ws_id, entry.id)
        if token is None:
            raise Conflict(f"Connection {entry.label} is not signed in yet (status pending); "
                           "finish the sign-in at the authorization URL")
        client_id, client_secret = client_credentials(app, ws_id, store)
        refreshed: dict[str, Any] = {}

        async def keep(new: dict[str, Any], **_: Any) -> None:
            refreshed.update(new)

        try:
            async with _client(app, client_id, client_secret, allow_private, token=token,
                               update_token=keep) as client:
                await client.ensure_active_token(client.token)
                current = dict(client.token)
        except Exception as exc:  # noqa: BLE001 - the refresh failed: the user must sign in again
            detail = f"the access token expired and could not be refreshed: {_problem(exc)}"
            await asyncio.to_thread(
                vault.set_state, ws_id, entry.id, status="error", status_detail=detail
            )
            raise Conflict(f"Connection {entry.label}: {detail}") from None
        if refreshed:
            await asyncio.to_thread(vault.put_tokens, ws_id, entry.id, current)
        return str(current["access_token"])

"""Connections of a workspace: adding and removing them (one commit on main each; metadata
only), each connection's status (from the secrets it names and the server-private vault), the
secrets they use, their activity, and the endpoint (URL + auth headers) a client uses to reach a
connection's MCP server, with live tests and tool lists."""

from __future__ import annotations

import asyncio
import builtins
import secrets
import time
from collections.abc import Collection
from typing import Any, Literal

import msgspec

from floom_git.config import Settings
from floom_git.errors import BadGateway, Conflict, InvalidInput, NotFound
from floom_git.schemas.api import Deleted
from floom_git.schemas.base import plain
from floom_git.schemas.connections import (
    CONNECTIONS_FILE,
    ActivityItem,
    AppConnectionCreate,
    ConnAuth,
    ConnectionActivity,
    ConnectionEntry,
    ConnectionOut,
    ConnectionSecret,
    ConnectionsFile,
    ConnectionStatus,
    ConnectionTest,
    McpConnectionCreate,
    OAuthDone,
    OAuthStarted,
    RemoteTool,
    check_entry,
    check_url_shape,
)
from floom_git.schemas.integrations import CatalogApp, CatalogPage
from floom_git.services import egress, oauth, remote_mcp
from floom_git.services.actor import Actor
from floom_git.services.connection_files import NOT_FOUND, dump, entries, find, read
from floom_git.services.connection_vault import ConnectionVault
from floom_git.services.integrations import Catalog
from floom_git.services.remote_mcp import Endpoint
from floom_git.services.secrets import SecretStore
from floom_git.services.tenancy import iso as _iso
from floom_git.services.workspaces import Workspace, WorkspaceManager
from floom_git.storage.repo import Changeset, WorkspaceRepo


def _now_iso() -> str:
    return _iso(time.time()) or ""


class Connections:
    """Connection routes' rules over the file, the vault, the catalog and the secret store."""

    def __init__(self, settings: Settings, vault: ConnectionVault, catalog: Catalog,
                 secrets_store: SecretStore) -> None:
        self.settings = settings
        self.vault = vault
        self.catalog = catalog
        self.secrets = secrets_store
        self.allow_private = settings.allow_private_mcp_urls

    # -- status ---------------------------------------------------------------------------
    def auth_of(self, entry: ConnectionEntry) -> ConnAuth | None:
        """The secret-based auth a connection uses: its own, or its app's API key."""
        if entry.auth is not None or entry.kind != "app":
            return entry.auth
        app = self.catalog.apps().get(entry.app or "")
        if app is not None and app.auth == "api_key" and app.api_key is not None:
            kind: Literal["bearer", "header"] = "header" if app.api_key.header else "bearer"
            return ConnAuth(type=kind, secret=app.api_key.secret, name=app.api_key.header)
        return None

    def status(self, ws: Workspace, entry: ConnectionEntry,
               secret_names: Collection[str] | None = None) -> tuple[str, str | None]:
        auth = self.auth_of(entry)
        if auth is not None:
            names = self.secrets.names(ws.uid) if secret_names is None else secret_names
            if auth.secret not in names:
                return "missing_secret", f"workspace secret {auth.secret} is not set"
        if entry.kind == "app":
            app = self.catalog.apps().get(entry.app or "")
            if app is None:
                return "error", f"app {entry.app} is not in the integrations catalog"
            if app.auth == "oauth2":
                state = self.vault.state(ws.uid, entry.id)
                return state.get("status") or "pending", state.get("status_detail")
        return "active", None

    def out(self, ws: Workspace, entry: ConnectionEntry,
            secret_names: Collection[str] | None = None) -> ConnectionOut:
        status, detail = self.status(ws, entry, secret_names)
        auth = self.auth_of(entry)
        url = entry.url
        if entry.kind == "app" and url is None:
            app = self.catalog.apps().get(entry.app or "")
            url = app.mcp_url if app is not None else None
        return ConnectionOut(
            id=entry.id, label=entry.label, kind=entry.kind, app=entry.app, url=url,
            auth=plain(auth) if auth is not None else None,
            allowed_tools=entry.allowed_tools, scopes=entry.scopes, status=status,
            status_detail=detail, created_at=entry.created_at, created_by=entry.created_by)

    # The reads below are the routes' (blocking: files and the vault), run off the event loop.
    async def list(self, ws: Workspace) -> list[ConnectionOut]:
        def listing() -> list[ConnectionOut]:
            names = set(self.secrets.names(ws.uid))
            return [self.out(ws, c, names) for c in entries(ws)]
        return await asyncio.to_thread(listing)

    async def one(self, ws: Workspace, conn_id: str) -> ConnectionOut:
        return await asyncio.to_thread(lambda: self.out(ws, find(ws, conn_id)))

    async def status_of(self, ws: Workspace, conn_id: str) -> ConnectionStatus:
        return await asyncio.to_thread(self._status_of, ws, conn_id)

    def _status_of(self, ws: Workspace, conn_id: str) -> ConnectionStatus:
        entry = find(ws, conn_id)
        status, detail = self.status(ws, entry)
        state = self.vault.state(ws.uid, conn_id)
        expires = state.get("expires_at")
        return ConnectionStatus(
            id=conn_id,
            status=status,
            status_detail=detail,
            updated_at=_iso(state.get("updated_at")),
            expires_at=_iso(expires) if isinstance(expires, int | float) else None,
            last_test=state.get("last_test"),
        )

    async def secret_overview(self, ws: Workspace) -> builtins.list[ConnectionSecret]:
        """Every secret a connection authenticates with, and every other workspace secret."""
        return await asyncio.to_thread(self._secret_overview, ws)

    def _secret_overview(self, ws: Workspace) -> builtins.list[ConnectionSecret]:
        stored = self.secrets.names(ws.uid)
        users: dict[str, list[str]] = {name: [] for name in stored}
        for entry in entries(ws):
            auth = self.auth_of(entry)
            if auth is not None:
                users.setdefault(auth.secret, []).append(entry.id)
        return [ConnectionSecret(name=name, status="set" if name in stored else "missing",
                                 connections=sorted(ids),
                                 updated_at=(stored.get(name) or {}).get("updated_at"))
                for name, ids in sorted(users.items())]

    # -- writes ---------------------------------------------------------------------------
    async def _add(self, ws: Workspace, actor: Actor, entry: ConnectionEntry) -> ConnectionEntry:
        check_entry(entry, "$")

        def build(repo: WorkspaceRepo) -> Changeset:
            current = read(repo)
            if any(c.label == entry.label for c in current.connections):
                raise Conflict(f"A connection labelled {entry.label} already exists")
            updated = ConnectionsFile(connections=[*current.connections, entry])
            return Changeset({CONNECTIONS_FILE: dump(updated)},
                             f"connections: add {entry.label} ({entry.kind})")

        await ws.writer.write(build, actor.signature)
        return entry

    def _new(self, actor: Actor, **fields: Any) -> ConnectionEntry:
        return ConnectionEntry(id=f"conn_{secrets.token_hex(6)}", created_at=_now_iso(),
                               created_by=actor.user_id, **fields)

    @staticmethod
    def _bound(entry: ConnectionEntry) -> dict[str, Any]:
        return {"url": entry.url, "auth": msgspec.to_builtins(entry.auth)}

    async def add_mcp(
        self, ws: Workspace, actor: Actor, body: McpConnectionCreate
    ) -> ConnectionOut:
        """Register a remote MCP server; InvalidInput for a blocked URL, Conflict for a label in
        use. Its URL and auth are bound to it in the vault: a secret is only ever sent to the
        URL it was registered with through the API, whatever a push does to the file."""
        check_url_shape(body.url, "url")
        egress.check_url(body.url, self.allow_private)
        auth = body.auth.stored() if body.auth is not None else None
        entry = self._new(actor, label=body.label, kind="mcp", url=body.url, auth=auth,
                          allowed_tools=body.allowed_tools)
        await self._add(ws, actor, entry)
        await asyncio.to_thread(self.vault.set_state, ws.uid, entry.id, bound=self._bound(entry))
        return self.out(ws, entry)

    async def connect_app(self, ws: Workspace, actor: Actor, body: AppConnectionCreate,
                          redirect_uri: str) -> OAuthStarted:
        """An app connection of the catalog. OAuth apps start a sign-in (authorization URL,
        status pending); other apps are ready at once (or wait for their API key secret).
        Conflict, before anything is written, when an OAuth app has no client configured."""
        app = self.catalog.get(body.app)
        if app.auth == "oauth2":
            oauth.client_credentials(app, ws.uid, self.secrets)
        entry = self._new(actor, label=body.label or app.slug, kind="app", app=app.slug,
                          scopes=body.scopes, allowed_tools=body.allowed_tools)
        await self._add(ws, actor, entry)
        if app.auth == "oauth2":
            return await asyncio.to_thread(
                oauth.start,
                self.vault,
                self.secrets,
                ws.uid,
                entry,
                app,
                redirect_uri,
                self.settings.oauth_state_ttl_seconds,
            )
        status, _ = self.status(ws, entry)
        return OAuthStarted(connection_id=entry.id, status=status, authorization_url=None)

    async def finish_sign_in(
        self,
        manager: WorkspaceManager,
        state: str,
        code: str | None,
        error: str | None,
        description: str | None,
    ) -> OAuthDone:
        """The provider redirected back: exchange the code and store the tokens (active), or
        record its refusal. InvalidInput for an unknown, used or expired `state`."""
        pending = await asyncio.to_thread(self.vault.claim, state)
        if pending is None:
            raise InvalidInput("state: unknown, already used or expired sign-in; start again with "
                               "POST /connections")
        if error:
            await oauth.fail(self.vault, pending, error, description)
        if not code:
            raise InvalidInput("code: missing from the provider's redirect")
        ws = manager.by_uid(pending.ws_id)  # sign-ins are keyed by the internal id
        if ws is None:
            raise InvalidInput("state: the workspace of this sign-in no longer exists")
        entry = find(ws, pending.conn_id)
        done = await oauth.finish(
            self.vault,
            self.secrets,
            pending,
            self.catalog.get(entry.app or ""),
            code,
            self.allow_private,
        )
        return msgspec.structs.replace(done, workspace_id=ws.id)

    async def delete(self, ws: Workspace, actor: Actor, conn_id: str) -> Deleted:
        entry = find(ws, conn_id)

        def build(repo: WorkspaceRepo) -> Changeset:
            current = read(repo)
            kept = [c for c in current.connections if c.id != conn_id]
            if len(kept) == len(current.connections):
                raise NotFound(NOT_FOUND)
            return Changeset({CONNECTIONS_FILE: dump(ConnectionsFile(connections=kept))},
                             f"connections: remove {entry.label}")

        result = await ws.writer.write(build, actor.signature)
        await asyncio.to_thread(self.vault.drop, ws.uid, conn_id)
        return Deleted(deleted=True, id=conn_id, sha=result.short)

    # -- reaching the server ----------------------------------------------------------------
    async def endpoint(self, ws: Workspace, entry: ConnectionEntry) -> Endpoint:
        """URL and auth headers of the connection's MCP server (OAuth tokens refreshed when
        due). Conflict when it cannot be reached yet: no MCP server, a missing secret, no
        sign-in."""
        url = entry.url
        headers: dict[str, str] = {}
        if entry.kind == "app":
            app = self.catalog.get(entry.app or "")
            url = app.mcp_url
            if url is None:
                raise Conflict(f"Connection {entry.label}: app {app.slug} has no MCP server in the "
                               "catalog (an operator can set mcp_url in system/integrations.yml)")
            if app.auth == "oauth2":
                token = await oauth.access_token(self.vault, self.secrets, ws.uid, entry, app,
                                                 self.allow_private)
                headers["Authorization"] = f"Bearer {token}"
        assert url is not None
        if entry.auth is not None and self.vault.state(ws.uid, entry.id).get(
            "bound"
        ) != self._bound(entry):
            raise Conflict(f"Connection {entry.label}: its URL or auth was changed outside the API "
                           "(e.g. by a push); an admin must register it again with POST "
                           "/connections/mcp before its secret is sent anywhere")
        auth = self.auth_of(entry)
        if auth is not None:
            values = await asyncio.to_thread(self.secrets.values, ws.uid, [auth.secret])
            if auth.secret not in values:
                raise Conflict(
                    f"Connection {entry.label}: workspace secret {auth.secret} is not set"
                )
            if auth.type == "bearer":
                headers["Authorization"] = f"Bearer {values[auth.secret]}"
            else:
                headers[auth.name or "Authorization"] = values[auth.secret]
        egress.check_url(url, self.allow_private)
        return Endpoint(url, headers, self.allow_private, self.settings.mcp_call_timeout_seconds)

    def _remote_tools(self, entry: ConnectionEntry,
                      tools: builtins.list[Any]) -> builtins.list[RemoteTool]:
        allowed = set(entry.allowed_tools) if entry.allowed_tools is not None else None
        return [
            RemoteTool(
                name=t.name,
                description=t.description,
                input_schema=dict(t.input_schema),
                allowed=allowed is None or t.name in allowed,
            )
            for t in tools
        ]

    async def test(self, ws: Workspace, conn_id: str) -> ConnectionTest:
        """A live initialize + tools/list; the outcome is also kept as the connection's last
        test."""
        entry = find(ws, conn_id)
        try:
            result = await remote_mcp.probe(await self.endpoint(ws, entry))
        except Conflict as exc:
            result = remote_mcp.Probe(False, 0, None, [], exc.message)
        at = _now_iso()
        last = {"ok": result.ok, "at": at, "latency_ms": result.latency_ms, "error": result.error,
                "tool_count": len(result.tools)}
        await asyncio.to_thread(self.vault.set_state, ws.uid, conn_id, last_test=last)
        return ConnectionTest(id=conn_id, ok=result.ok, latency_ms=result.latency_ms,
                              server=result.server, tools=self._remote_tools(entry, result.tools),
                              error=result.error, tested_at=at)

    async def tools(self, ws: Workspace, conn_id: str) -> builtins.list[RemoteTool]:
        """The tools the server lists now (each marked allowed or not); BadGateway when the
        server cannot be reached."""
        entry = find(ws, conn_id)
        result = await remote_mcp.probe(await self.endpoint(ws, entry))
        if not result.ok:
            raise BadGateway(f"Connection {entry.label}: could not list its tools: {result.error}")
        return self._remote_tools(entry, result.tools)

    async def activity(self, ws: Workspace, conn_id: str, limit: int) -> ConnectionActivity:
        return await asyncio.to_thread(self._activity, ws, conn_id, limit)

    def _activity(self, ws: Workspace, conn_id: str, limit: int) -> ConnectionActivity:
        find(ws, conn_id)
        calls = self.vault.calls(ws.uid, conn_id)
        runs: dict[str, dict[str, Any]] = {}
        for call in calls:
            rid = call.get("run_id")
            if not rid:
                continue
            item = runs.setdefault(rid, {"run_id": rid, "worker_id": call.get("worker_id"),
                                         "calls": 0, "errors": 0, "last_at": call.get("at")})
            item["calls"] += 1
            item["errors"] += 0 if call.get("ok") else 1
        return ConnectionActivity(id=conn_id, runs=list(runs.values())[:limit],
                                  calls=[msgspec.convert(c, ActivityItem) for c in calls[:limit]])

    # -- the integrations catalog ---------------------------------------------------------------
    async def catalog_page(self, ws: Workspace, *, search: str | None, category: str | None,
                           page: int, limit: int) -> CatalogPage:
        """A page of the catalog, each app saying whether the workspace holds its OAuth client."""
        def read() -> CatalogPage:
            return self.catalog.page(search=search, category=category, page=page, limit=limit,
                                     secret_names=set(self.secrets.names(ws.uid)))
        return await asyncio.to_thread(read)

    async def catalog_app(self, slug: str) -> CatalogApp:
        return await asyncio.to_thread(self.catalog.get, slug)

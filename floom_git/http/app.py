"""create_app(settings): the composition root. Wires the workspace manager, auth, routes,
middleware and background tasks (started and stopped in cleanup_ctx)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from floom_git import dashboard
from floom_git.config import Settings
from floom_git.http import git_http, mcp_endpoint, metrics, middleware, openapi
from floom_git.http.handlers import chat as chat_handlers
from floom_git.http.handlers import connections as connections_handlers
from floom_git.http.handlers import runs as runs_handlers
from floom_git.http.handlers.health import MIRROR
from floom_git.http.keys import AUTH, IDENTITY, MANAGER, SECRETS, SETTINGS
from floom_git.http.ratelimit import LIMITER, Limiter
from floom_git.http.routes import ROUTES, register
from floom_git.runtime.watcher import Watcher
from floom_git.services.auth import Authenticator, check_secret_strength, load_or_create_secret
from floom_git.services.identity import Identity, Lifetimes
from floom_git.services.identity.run_tokens import RunTokens
from floom_git.services.mirror import Mirror
from floom_git.services.secrets import SecretStore
from floom_git.services.sharing import ShareStore
from floom_git.services.workspaces import Workspace, WorkspaceManager

log = logging.getLogger("floom_git")
USAGE_FLUSH_SECONDS = 30
WATCHER = web.AppKey("watcher", Watcher)


def create_app(settings: Settings) -> web.Application:
    """The server; ValueError (before anything is touched) for a FLOOM_SECRET too weak to use,
    or a Celery executor without its broker or key."""
    if settings.secret:
        check_secret_strength(settings.secret)
    app = web.Application(
        middlewares=[metrics.middleware, middleware.errors, middleware.auth],
        client_max_size=settings.max_upload_bytes,
        handler_args={"max_field_size": 16384, "max_line_size": 16384},
    )
    app[SETTINGS] = settings
    app.on_response_prepare.append(middleware.add_request_id)
    manager = WorkspaceManager(settings)
    app[MANAGER] = manager
    secret = settings.secret or load_or_create_secret(settings.system_dir)
    identity = Identity(settings.system_dir, password_profile=settings.argon2_profile,
                        lifetimes=Lifetimes(settings.session_ttl_seconds, settings.magic_link_ttl_seconds,
                                            settings.device_code_ttl_seconds))
    app[IDENTITY] = identity
    app[SECRETS] = SecretStore(settings.system_dir)
    manager.secret_names = app[SECRETS].names
    app[LIMITER] = Limiter(settings)
    app[AUTH] = Authenticator(secret, settings.shared_secret_role, identity,
                              workspace_uid=manager.uid_of, run_tokens=RunTokens())
    git_http.setup(app)
    metrics.setup(app)  # before the workspaces open: it counts their commits
    routes = list(ROUTES) + openapi.routes()
    app[middleware.SPECS] = register(app, routes)
    app[openapi.ROUTES_KEY] = routes
    dashboard.setup(app)  # HTML pages at /, /ui/ and /docs
    app.cleanup_ctx.append(_workspaces)
    app[MIRROR] = Mirror(manager, settings)
    app.cleanup_ctx.append(_mirror)
    app.cleanup_ctx.append(_identity)
    runs_handlers.install(app)  # run engine, scheduler, alerts (after workspaces open)
    connections_handlers.install(app)
    app[runs_handlers.ENGINE].agents.connections = app[connections_handlers.CONNECTIONS]
    chat_handlers.install(app)  # after the engine: its shutdown commits conversations first
    _purge_on_delete(app)
    mcp_endpoint.setup(app)  # the workspace MCP server; its session manager runs from start-up
    if settings.watch:
        app.cleanup_ctx.append(_watcher)
    return app


def _purge_on_delete(app: web.Application) -> None:
    """What deleting a workspace removes, in this order, before its repository goes: its runs
    (queued and running ones cancelled as `workspace_deleted`, spool removed), schedules,
    alerts, webhook secrets and receipts and rate windows, stars, connection state and tokens,
    share links, secrets, and its
    members, invites, bound tokens and sessions (with their rate-limit buckets)."""
    manager, identity, limiter = app[MANAGER], app[IDENTITY], app[LIMITER]
    shares = ShareStore(app[SETTINGS].system_dir)

    def blocking(drop: Callable[[str], object]) -> Callable[[Workspace], Awaitable[None]]:
        async def purge(ws: Workspace) -> None:
            await asyncio.to_thread(drop, ws.uid)
        return purge

    def members_and_tokens(uid: str) -> None:
        limiter.forget(set(identity.store.drop_workspace(uid)))

    manager.on_delete += [
        app[runs_handlers.ENGINE].drop_workspace,
        blocking(app[runs_handlers.SCHEDULER].drop),
        blocking(app[runs_handlers.ALERTS].drop),
        blocking(app[runs_handlers.WEBHOOKS].drop),
        blocking(app[runs_handlers.STARS].drop),
        blocking(app[connections_handlers.CONNECTIONS].vault.drop_workspace),
        blocking(shares.drop_workspace),
        blocking(app[SECRETS].drop),
        blocking(members_and_tokens),
    ]


async def _workspaces(app: web.Application) -> AsyncIterator[None]:
    manager = app[MANAGER]
    await asyncio.to_thread(manager.open_all)
    if not manager.known("default"):
        try:
            await manager.create("default")
            log.info("created workspace 'default' from %s", app[SETTINGS].template_dir)
        except Exception as exc:  # e.g. a folder `default` that is no repository: serve the rest
            manager.fence("default", exc)
    yield


async def _identity(app: web.Application) -> AsyncIterator[None]:
    """Flush tokens' last-use times now and then (requests never write), and close the store."""
    identity = app[IDENTITY]

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(USAGE_FLUSH_SECONDS)
            try:
                await asyncio.to_thread(identity.tokens.flush_usage)
            except Exception:
                log.exception("could not record token use")

    task = asyncio.create_task(flush_forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.to_thread(identity.close)


async def _watcher(app: web.Application) -> AsyncIterator[None]:
    watcher = Watcher(app[MANAGER], app[SETTINGS])
    app[WATCHER] = watcher
    await watcher.start()
    yield
    await watcher.stop()


async def _mirror(app: web.Application) -> AsyncIterator[None]:
    """Push every workspace to WORKEROS_GIT_REMOTE in the background (no-op when unset)."""
    app[MIRROR].start()
    yield
    await app[MIRROR].stop()

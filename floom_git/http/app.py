"""create_app(settings): the composition root, and the one place that reads as the wiring
diagram. It builds every long-lived object (workspaces, identity, git transport, metrics, the
mirror, the run engine and its companions, connections, the chat, the MCP endpoint, the
dashboard), puts each on the app under a key of http/keys.py, subscribes them to one another,
serves the route table, and starts and stops them in cleanup_ctx (in the order listed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from floom_git.config import Settings
from floom_git.dashboard.routes import setup as dashboard_setup
from floom_git.http import mcp_endpoint, metrics, middleware
from floom_git.http.handlers import chat
from floom_git.http.keys import (
    ALERTS,
    ANSWERS,
    AUTH,
    CONNECTIONS,
    ENGINE,
    IDENTITY,
    LIMITER,
    MANAGER,
    MCP_LIFETIME,
    METRICS,
    MIRROR,
    NOTIFIER,
    REMOTE_RUNS,
    ROUTES_KEY,
    SCHEDULER,
    SECRETS,
    SETTINGS,
    SPECS,
    STARS,
    TRANSPORT,
    WATCHER,
    WEBHOOKS,
)
from floom_git.http.ratelimit import Limiter
from floom_git.http.route import register
from floom_git.http.routes import SERVED
from floom_git.runtime.alerts import Notifier
from floom_git.runtime.celery_executor import CeleryExecutor
from floom_git.runtime.queue import RunEngine
from floom_git.runtime.remote_runs import RemoteRuns
from floom_git.runtime.scheduler import Scheduler
from floom_git.runtime.watcher import Watcher
from floom_git.services.alerts import AlertStore
from floom_git.services.auth import Authenticator, check_secret_strength, load_or_create_secret
from floom_git.services.connection_vault import ConnectionVault
from floom_git.services.connections import Connections
from floom_git.services.git_transport import GitTransport
from floom_git.services.identity import Identity, Lifetimes
from floom_git.services.identity.run_tokens import RunTokens
from floom_git.services.integrations import Catalog
from floom_git.services.mirror import Mirror
from floom_git.services.secrets import SecretStore
from floom_git.services.sharing import ShareStore
from floom_git.services.stars import StarStore
from floom_git.services.webhooks import WebhookStore
from floom_git.services.workspaces import WorkspaceManager

log = logging.getLogger("floom_git")
USAGE_FLUSH_SECONDS = 30
Context = Callable[[web.Application], AsyncIterator[None]]


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
    app.on_response_prepare.append(middleware.add_request_id)
    # workspaces, identity and who may do what
    app[SETTINGS] = settings
    manager = app[MANAGER] = WorkspaceManager(settings)
    identity = app[IDENTITY] = Identity(
        settings.system_dir, password_profile=settings.argon2_profile,
        lifetimes=Lifetimes(settings.session_ttl_seconds, settings.magic_link_ttl_seconds,
                            settings.device_code_ttl_seconds))
    secrets = app[SECRETS] = SecretStore(settings.system_dir)
    manager.secret_names = secrets.names
    app[LIMITER] = Limiter(settings)
    app[AUTH] = Authenticator(settings.secret or load_or_create_secret(settings.system_dir),
                              settings.shared_secret_role, identity,
                              workspace_uid=manager.uid_of, run_tokens=RunTokens())
    # git over HTTP: the transport and its push validator
    transport = app[TRANSPORT] = GitTransport(settings)
    transport.ensure_hooks()
    app.cleanup_ctx.append(_running(transport.start, transport.stop))
    # metrics count every workspace's commits and events: subscribed before the workspaces open
    counters = app[METRICS] = metrics.Metrics(app)
    manager.on_open.append(counters.opened)
    manager.on_close.append(counters.closed)
    app.cleanup_ctx.append(_running(counters.start, counters.stop))
    # the route table and the dashboard's pages
    app[SPECS] = register(app, SERVED)
    app[ROUTES_KEY] = SERVED
    dashboard_setup(app)  # HTML pages at /, /ui/ and /docs
    app.cleanup_ctx.append(_workspaces)
    mirror = app[MIRROR] = Mirror(manager, settings)  # pushes to WORKEROS_GIT_REMOTE (if set)
    app.cleanup_ctx.append(_running(_sync(mirror.start), mirror.stop))
    app.cleanup_ctx.append(_identity)
    _runs(app, settings)  # after the workspaces open
    app[CONNECTIONS] = Connections(settings, ConnectionVault(settings.system_dir),
                                   Catalog(settings.system_dir), secrets)
    app[ENGINE].agents.connections = app[CONNECTIONS]  # agent runs call their tools
    app[ANSWERS] = set()
    app.cleanup_ctx.append(chat.lifetime)  # after the engine: its shutdown commits first
    _purge_on_delete(app)
    # the workspace MCP server; its session manager runs from the first MCP request
    app[MCP_LIFETIME] = mcp_endpoint.Lifetime(settings)
    app.cleanup_ctx.append(mcp_endpoint.lifetime)
    # Stopped when shutdown begins, not at cleanup: aiohttp waits up to 60 s for open requests
    # in between, and a client waiting on run_worker would hold the shutdown that long.
    app.on_shutdown.append(app[MCP_LIFETIME].stop)
    if settings.watch:
        app.cleanup_ctx.append(_watcher)
    return app


def _runs(app: web.Application, cfg: Settings) -> None:
    """The run engine (local, or Celery executors reporting back over the executor API), the
    scheduler, alerts on finished runs, webhook secrets and stars."""
    engine = app[ENGINE] = RunEngine(cfg, app[MANAGER], app[SECRETS])
    app[MANAGER].run_engine = engine  # each workspace's run store reports to it
    remote = app[REMOTE_RUNS] = RemoteRuns(cfg.run_max_artifact_bytes)
    if cfg.executor == "celery":
        tokens = app[AUTH].run_tokens
        assert tokens is not None
        engine.backend = CeleryExecutor(cfg, remote, tokens)
    alerts = app[ALERTS] = AlertStore(cfg.system_dir)
    notifier = app[NOTIFIER] = Notifier(cfg, alerts)
    engine.on_finished.append(notifier.notify)
    scheduler = app[SCHEDULER] = Scheduler(cfg, app[MANAGER], engine)
    app[WEBHOOKS] = WebhookStore(cfg.system_dir)
    app[STARS] = StarStore(cfg.system_dir)

    async def start() -> None:
        await engine.start()
        if cfg.scheduler:
            scheduler.start()

    async def stop() -> None:
        await scheduler.stop()
        await engine.stop()
        await notifier.close()

    app.cleanup_ctx.append(_running(start, stop))


def _purge_on_delete(app: web.Application) -> None:
    """What deleting a workspace removes, in this order, before its repository goes: its
    conversations' spool, its runs (queued and running ones cancelled as `workspace_deleted`,
    spool removed), schedules, alerts, webhook secrets and receipts and rate windows, stars,
    connection state and tokens, share links, secrets, and its members, invites, bound tokens
    and sessions (with their rate-limit buckets). A new store keyed by the workspace's uid
    belongs in this list."""
    manager, identity, limiter = app[MANAGER], app[IDENTITY], app[LIMITER]
    shares = ShareStore(app[SETTINGS].system_dir)

    def members_and_tokens(uid: str) -> None:
        limiter.forget(set(identity.store.drop_workspace(uid)))

    manager.on_delete += [chat.forget, app[ENGINE].drop_workspace]
    manager.on_delete_stored += [
        app[SCHEDULER].drop,
        app[ALERTS].drop,
        app[WEBHOOKS].drop,
        app[STARS].drop,
        app[CONNECTIONS].vault.drop_workspace,
        shares.drop_workspace,
        app[SECRETS].drop,
        members_and_tokens,
    ]


def _running(start: Callable[[], Awaitable[None]],
             stop: Callable[[], Awaitable[None]]) -> Context:
    """A cleanup context that starts something with the app and stops it at cleanup."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        await start()
        yield
        await stop()
    return context


def _sync(start: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        start()
    return run


async def _workspaces(app: web.Application) -> AsyncIterator[None]:
    await app[MANAGER].start()
    yield


async def _identity(app: web.Application) -> AsyncIterator[None]:
    """Flush tokens' last-use times now and then (requests never write), and close the store."""
    identity = app[IDENTITY]
    task = asyncio.create_task(identity.record_usage_every(USAGE_FLUSH_SECONDS))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await identity.shutdown()


async def _watcher(app: web.Application) -> AsyncIterator[None]:
    """Commit edits made on the server's disk (FLOOM_WATCH)."""
    watcher = Watcher(app[MANAGER], app[SETTINGS])
    app[WATCHER] = watcher
    await watcher.start()
    yield
    await watcher.stop()

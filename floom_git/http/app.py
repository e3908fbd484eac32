"""create_app(settings): the composition root. Wires the workspace manager, auth, routes,
middleware and background tasks (started and stopped in cleanup_ctx)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from floom_git.config import Settings
from floom_git.http import middleware, openapi
from floom_git.http.keys import AUTH, MANAGER, SETTINGS
from floom_git.http.routes import ROUTES, register
from floom_git.services.auth import Authenticator, load_or_create_secret
from floom_git.services.workspaces import WorkspaceManager

log = logging.getLogger("floom_git")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[middleware.errors, middleware.auth],
        client_max_size=settings.max_upload_bytes,
        handler_args={"max_field_size": 16384, "max_line_size": 16384},
    )
    app[SETTINGS] = settings
    manager = WorkspaceManager(settings)
    app[MANAGER] = manager
    secret = settings.secret or load_or_create_secret(settings.system_dir)
    app[AUTH] = Authenticator(secret, settings.shared_secret_role)
    routes = list(ROUTES) + openapi.routes()
    app[middleware.SPECS] = register(app, routes)
    app[openapi.ROUTES_KEY] = routes
    app.cleanup_ctx.append(_workspaces)
    return app


async def _workspaces(app: web.Application) -> AsyncIterator[None]:
    manager = app[MANAGER]
    await asyncio.to_thread(manager.open_all)
    if not manager.exists("default"):
        await manager.create("default")
        log.info("created workspace 'default' from %s", app[SETTINGS].template_dir)
    yield

"""Health and system information."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import settings
from floom_git.http.keys import MANAGER
from floom_git.schemas.api import Health
from floom_git.services import about


async def healthz(request: web.Request) -> web.Response:
    return wire.json(Health(status="ok"))


async def health(request: web.Request) -> web.Response:
    return wire.json(Health(status="ok"))


async def info(request: web.Request) -> web.Response:
    return wire.json(await about.system_info(settings(request), len(request.app[MANAGER].ids())))

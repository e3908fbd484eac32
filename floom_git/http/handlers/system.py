"""Health and system information."""

from __future__ import annotations

from aiohttp import web

from floom_git import __version__
from floom_git.http import wire
from floom_git.http.keys import MANAGER
from floom_git.schemas.api import Health, SystemInfo


async def healthz(request: web.Request) -> web.Response:
    return wire.json(Health(status="ok"))


async def health(request: web.Request) -> web.Response:
    return wire.json(Health(status="ok"))


async def info(request: web.Request) -> web.Response:
    return wire.json(SystemInfo(version=__version__, runner="local",
                                workspaces=len(request.app[MANAGER].ids())))

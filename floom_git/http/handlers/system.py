"""Health and system information."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import platform
import subprocess

from aiohttp import web

from floom_git import __version__
from floom_git.http import wire
from floom_git.http.handlers.common import settings
from floom_git.http.keys import MANAGER
from floom_git.schemas.api import Health, SystemInfo

STARTED_AT = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@functools.cache
def git_version(binary: str) -> str | None:
    """`git --version` of the git the server runs (e.g. "2.39.5"); None when it cannot run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    return words[2] if len(words) >= 3 and words[:2] == ["git", "version"] else out.strip() or None


async def healthz(request: web.Request) -> web.Response:
    return wire.json(Health(status="ok"))


async def health(request: web.Request) -> web.Response:
    return wire.json(Health(status="ok"))


async def info(request: web.Request) -> web.Response:
    cfg = settings(request)
    return wire.json(SystemInfo(
        version=__version__, environment=cfg.environment, runner="local",
        git_version=await asyncio.to_thread(git_version, cfg.git_binary),
        python_version=platform.python_version(), started_at=STARTED_AT,
        workspaces=len(request.app[MANAGER].ids())))

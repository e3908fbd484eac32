"""What the server says about itself (GET /system/info): its version, the git it runs, Python,
when it started and how many workspaces it serves."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import platform
import subprocess

from floom_git import __version__
from floom_git.config import Settings
from floom_git.schemas.api import SystemInfo

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


async def system_info(settings: Settings, workspaces: int) -> SystemInfo:
    return SystemInfo(
        version=__version__, environment=settings.environment, runner="local",
        git_version=await asyncio.to_thread(git_version, settings.git_binary),
        python_version=platform.python_version(), started_at=STARTED_AT, workspaces=workspaces)

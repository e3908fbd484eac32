"""What every handler needs from a request: the acting identity, the workspace, settings."""

from __future__ import annotations

from aiohttp import web

from floom_git.config import Settings
from floom_git.http.keys import ACTOR, SETTINGS, WORKSPACE
from floom_git.services.actor import Actor
from floom_git.services.workspaces import Workspace


def actor(request: web.Request) -> Actor:
    return request[ACTOR]


def workspace(request: web.Request) -> Workspace:
    return request[WORKSPACE]


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]

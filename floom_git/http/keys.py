"""Typed application and request keys shared by the HTTP modules."""

from __future__ import annotations

from aiohttp import web

from floom_git.config import Settings
from floom_git.services.actor import Actor
from floom_git.services.auth import Authenticator
from floom_git.services.identity import Identity
from floom_git.services.secrets import SecretStore
from floom_git.services.workspaces import Workspace, WorkspaceManager

SETTINGS = web.AppKey("settings", Settings)
MANAGER = web.AppKey("manager", WorkspaceManager)
AUTH = web.AppKey("auth", Authenticator)
IDENTITY = web.AppKey("identity", Identity)
SECRETS = web.AppKey("secrets", SecretStore)
ACTOR = web.RequestKey("actor", Actor)
WORKSPACE = web.RequestKey("workspace", Workspace)

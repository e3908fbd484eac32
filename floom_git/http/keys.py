"""Every typed application and request key of the server, in one place: what create_app puts
on the app, and what the middleware puts on a request."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from floom_git.config import Settings
from floom_git.runtime.alerts import Notifier
from floom_git.runtime.queue import RunEngine
from floom_git.runtime.remote_runs import RemoteRuns
from floom_git.runtime.scheduler import Scheduler
from floom_git.runtime.watcher import Watcher
from floom_git.services.actor import Actor
from floom_git.services.alerts import AlertStore
from floom_git.services.auth import Authenticator
from floom_git.services.connections import Connections
from floom_git.services.git_transport import GitTransport
from floom_git.services.identity import Identity
from floom_git.services.mirror import Mirror
from floom_git.services.secrets import SecretStore
from floom_git.services.stars import StarStore
from floom_git.services.webhooks import WebhookStore
from floom_git.services.workspaces import Workspace, WorkspaceManager

if TYPE_CHECKING:  # http modules that themselves read keys from here
    from floom_git.http.mcp_endpoint import Lifetime
    from floom_git.http.metrics import Metrics
    from floom_git.http.ratelimit import Limiter
    from floom_git.http.route import Handler, Route

# the core
SETTINGS = web.AppKey("settings", Settings)
MANAGER = web.AppKey("manager", WorkspaceManager)
AUTH = web.AppKey("auth", Authenticator)
IDENTITY = web.AppKey("identity", Identity)
SECRETS = web.AppKey("secrets", SecretStore)
LIMITER: web.AppKey[Limiter] = web.AppKey("limiter")
# the route table as served: handler -> Route for the middleware, and the list for the spec
SPECS: web.AppKey[dict[Handler, Route]] = web.AppKey("route_specs")
ROUTES_KEY: web.AppKey[list[Route]] = web.AppKey("routes")
PAGES_KEY: web.AppKey[list[tuple[str, str]]] = web.AppKey("dashboard_pages")
# git, the mirror, the watcher, metrics
TRANSPORT = web.AppKey("git_transport", GitTransport)
MIRROR = web.AppKey("mirror", Mirror)
WATCHER = web.AppKey("watcher", Watcher)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
# runs and what hangs off them
ENGINE = web.AppKey("run_engine", RunEngine)
SCHEDULER = web.AppKey("run_scheduler", Scheduler)
NOTIFIER = web.AppKey("alert_notifier", Notifier)
REMOTE_RUNS = web.AppKey("remote_runs", RemoteRuns)
WEBHOOKS = web.AppKey("webhook_store", WebhookStore)
ALERTS = web.AppKey("alert_store", AlertStore)
STARS = web.AppKey("star_store", StarStore)
# agents: connections, the MCP endpoint, the chat's running answers (they outlive a client gone
# away, and are stopped at shutdown)
CONNECTIONS = web.AppKey("connections", Connections)
MCP_LIFETIME: web.AppKey[Lifetime] = web.AppKey("mcp_lifetime")
ANSWERS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("chat_answers")

# per request
ACTOR = web.RequestKey("actor", Actor)
REQUEST_ID = web.RequestKey("request_id", str)
WORKSPACE = web.RequestKey("workspace", Workspace)
GIVEN_BODY = web.RequestKey("given_body", bytes)  # a body given in-process (dashboard forms)
# the dashboard: the API's answer to a page's in-process call, and the request it was made as
ANSWER = web.RequestKey("dashboard_answer", web.StreamResponse)
TWIN = web.RequestKey("dashboard_twin", web.Request)


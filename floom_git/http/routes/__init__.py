"""Every route in one table. Each is served at /X, /api/X, /v1/X and /api/v1/X.

`perm` is the least role a caller needs: public (no auth), read (viewer), write (member),
admin, owner; or run (the run token of the run in the path, for remote executors). The auth
middleware enforces it; /openapi.json is generated from this table. Handler modules never import
it: to add a route, write the handler, then list it in the part below that fits.

Order matters where paths overlap: aiohttp matches in registration order, so /runs/export.csv
comes before /runs/{id}, /mcp-tools/serve before /mcp-tools/{id}, /connections/secrets before
/connections/{id}.
"""

from __future__ import annotations

from floom_git.http import openapi
from floom_git.http.route import PREFIXES, Route
from floom_git.http.routes import access, agents, assets, collab, ops, runs

ROUTES: list[Route] = [
    *assets.ROUTES,
    *collab.issues_routes(), *collab.sharing_routes(), *collab.export_routes(),
    *collab.feedback_routes(),
    *ops.git_http_routes(),
    *access.access_routes(),
    *ops.health_routes(), *ops.metrics_routes(),
    *runs.automation_routes(), *runs.runs_routes(),  # export.csv before /runs/{id}
    # /mcp-tools/serve before /mcp-tools/{id}; /connections/secrets before /connections/{id}
    *agents.mcp_endpoint_routes(), *agents.mcp_tools_routes(), *agents.connections_routes(),
    *agents.composio_routes(),
    *ops.executor_api_routes(), *ops.freeze_routes(),
    *agents.chat_routes(),
]
SERVED: list[Route] = ROUTES + openapi.routes()  # the API routes and the spec that lists them

__all__ = ["PREFIXES", "ROUTES", "SERVED", "Route"]

"""What a route is (`Route`) and how the table is served (`register`): a leaf, so the table, the
middleware, the OpenAPI generator and the dashboard can all read routes without importing each
other. The table itself is floom_git.http.routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIXES = ("", "/api", "/v1", "/api/v1")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    perm: str
    summary: str
    tag: str
    body: Any = None
    response: Any = None
    status: int = 200
    content_type: str = "application/json"
    # (name, type, description), optionally then {JSON-schema bounds} and True when required
    query: tuple[tuple[Any, ...], ...] = ()
    aliases: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


BIG = 10**9  # wire.MAX_INT: larger integers are refused


def limit(description: str) -> tuple[str, str, str, dict[str, Any]]:
    """The `limit` query parameter: at least 1; above the route's maximum it is capped."""
    return ("limit", "integer", description, {"minimum": 1, "maximum": BIG})


OFFSET = ("offset", "integer", "rows to skip", {"minimum": 0, "maximum": BIG})
PAGE = (limit("page size (larger values are capped at the route's maximum)"), OFFSET)
WHEN = {"format": "date-time"}  # ISO-8601 / RFC 3339
BOOL = "boolean"


def register(app: web.Application, routes: list[Route]) -> dict[Handler, Route]:
    """Add every route under each prefix; return handler -> Route for the middleware."""
    specs: dict[Handler, Route] = {}
    for route in routes:
        prefixes = PREFIXES if route.aliases else ("",)
        for prefix in prefixes:
            app.router.add_route(route.method, prefix + route.path, route.handler)
        specs[route.handler] = route
    return specs

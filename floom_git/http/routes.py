"""Every route in one table. Each is served at /X, /api/X, /v1/X and /api/v1/X.

`perm` is the least role a caller needs: public (no auth), read (viewer), write (member),
admin, owner; or run (the run token of the run in the path, for remote executors). The auth middleware enforces it; /openapi.json is generated from this table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from floom_git.http.handlers import contexts, system, workers, workspace
from floom_git.schemas import api
from floom_git.schemas.base import NOT_BLANK
from floom_git.schemas.run import WorkerPatch

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
W = "workers"
C = "contexts"
S = "workspace"

ROUTES: list[Route] = [
    Route("GET", "/healthz", system.healthz, "public", "Liveness check", "system", response=api.Health),
    Route("GET", "/health", system.health, "public", "Minimal health check", "system", response=api.Health),
    Route("GET", "/system/info", system.info, "read", "API version and environment", "system",
          response=api.SystemInfo),
    # workers
    Route("GET", "/workers", workers.list_workers, "read", "List workers", W,
          response=list[api.WorkerSummary], extra={"total_count": True},
          query=(limit("page size (default 100, at most 500)"), OFFSET,
                 ("status", "string", "only workers in this state",
                  {"enum": ["ready", "paused", "archived", "error", "needs_setup"]}),
                 ("starred", BOOL, "only starred (true) or unstarred (false)"),
                 ("q", "string", "substring of id, title or description"),
                 ("shape", "string", "list: inputs and long_description are null",
                  {"enum": ["full", "list"]}),
                 ("include_archived", BOOL, "include archived workers"))),
    Route("POST", "/workers/reload", workers.reload, "write", "Reload workers from disk", W,
          response=api.ReloadResult),
    Route("POST", "/workers", workers.create_worker, "write", "Create a worker from a manifest plus files",
          W, body=api.WorkerCreate, response=api.WorkerDetail, status=201,
          extra={"validates": "the files must hold a valid worker.yml and its entry file"}),
    Route("GET", "/workers/{id}", workers.get_worker, "read", "Worker detail", W, response=api.WorkerDetail),
    Route("DELETE", "/workers/{id}", workers.delete_worker, "write", "Delete a worker", W,
          response=api.Deleted),
    Route("PUT", "/workers/{id}", workers.put_worker, "write",
          "Update the worker's source ({worker_yml, run_py, skill_md, files}; other files stay)", W,
          body=api.WorkerCreate, response=api.WorkerDetail,
          extra={"validates": "the result must hold a valid worker.yml naming this worker"}),
    Route("PATCH", "/workers/{id}", workers.patch_worker, "write",
          "Worker settings: enabled, input_values, trigger_type + cron + timezone, visibility, "
          "name, description (one worker.yml commit), starred, webhook_secret_rotate", W,
          body=WorkerPatch, response=api.WorkerDetail,
          extra={"validates": "cron and timezone must parse; input_values must fit the "
                              "worker's inputs; the edited worker.yml must validate"}),
    Route("PUT", "/workers/{id}/files", workers.put_files, "write", "Replace all files of a worker", W,
          body=api.WorkerFilesPut, response=api.WorkerDetail,
          extra={"validates": "the files must hold a valid worker.yml and its entry file"}),
    Route("POST", "/workers/{id}/pause", workers.pause, "write", "Pause (no new runs)", W,
          response=api.WorkerDetail),
    Route("POST", "/workers/{id}/resume", workers.resume, "write", "Resume", W, response=api.WorkerDetail),
    Route("POST", "/workers/{id}/archive", workers.archive, "write", "Archive (soft-hide)", W,
          response=api.WorkerDetail),
    Route("POST", "/workers/{id}/restore", workers.restore, "write", "Restore an archived worker", W,
          response=api.WorkerDetail),
    Route("PATCH", "/workers/{id}/visibility", workers.set_visibility, "write", "Set visibility", W,
          body=api.WorkerVisibility, response=api.WorkerDetail),
    Route("GET", "/workers/{id}/versions", workers.list_versions, "read", "Version history (git)", W,
          response=list[api.Version], query=PAGE),
    Route("GET", "/workers/{id}/versions/{sha}", workers.version_files, "read",
          "Files of one version", W, response=api.VersionFiles),
    Route("POST", "/workers/{id}/rollback/{sha}", workers.rollback, "write",
          "Restore the worker as of a version (a new commit)", W, response=api.WorkerDetail),
    Route("GET", "/workers/{id}/sample-input", workers.sample_input, "read", "Example input values", W,
          response=dict[str, Any]),
    Route("GET", "/workers/{id}/bundle.zip", workers.bundle, "read", "Worker bundle as a ZIP", W,
          content_type="application/zip"),
    # contexts
    Route("GET", "/contexts", contexts.list_contexts, "read", "List context packs", C,
          response=list[api.ContextSummary], extra={"total_count": True}),
    Route("POST", "/contexts/{name}", contexts.create_context, "write", "Create a context pack", C,
          body=api.ContextCreate, response=api.ContextDetail, status=201,
          extra={"body_optional": True}),
    Route("GET", "/contexts/{name}", contexts.get_context, "read", "Context files and metadata", C,
          response=api.ContextDetail, query=(("path_prefix", "string", "only files under this prefix"),)),
    Route("DELETE", "/contexts/{name}", contexts.delete_context, "write", "Delete a context pack", C,
          response=api.Deleted),
    Route("POST", "/contexts/{name}/upload", contexts.upload, "write",
          "Bulk upload (multipart/form-data; fields path_prefix, create_if_missing)", C,
          response=api.UploadResult, status=201,
          extra={"multipart": True, "validates": "file names must be clean relative paths"}),
    Route("PUT", "/contexts/{name}/visibility", contexts.set_visibility, "write", "Set visibility", C,
          body=api.ContextVisibility, response=api.ContextDetail),
    Route("PATCH", "/contexts/{name}/sensitive", contexts.set_sensitive, "write",
          "Mark a pack sensitive (left out of exports) or not", C, body=api.ContextSensitive,
          response=api.ContextDetail),
    Route("GET", "/contexts/{name}/versions", contexts.list_versions, "read", "Context versions", C,
          response=list[api.Version], query=PAGE),
    Route("GET", "/contexts/{name}/versions/{sha}", contexts.version_files, "read",
          "Files of one version", C, response=api.VersionFiles),
    Route("POST", "/contexts/{name}/rollback/{sha}", contexts.rollback, "write",
          "Restore the context as of a version (a new commit)", C, response=api.ContextDetail),
    Route("GET", "/contexts/{name}/files/{path:.+}", contexts.read_file, "read",
          "Read a file: raw bytes, or {path, content, is_binary, encoding, size} with "
          "Accept: application/json", C, content_type="application/octet-stream",
          extra={"also": {"application/json": api.ContextFileOut}}),
    Route("PUT", "/contexts/{name}/files/{path:.+}", contexts.put_file, "write",
          "Create or update a file (raw body, or JSON {content, encoding})", C,
          body=api.ContextFileIn, response=api.WriteResult,
          extra={"raw_body": True, "validates": "the path must be a clean relative path and "
                                                "base64 content must decode"}),
    Route("DELETE", "/contexts/{name}/files/{path:.+}", contexts.delete_file, "write", "Delete a file", C,
          response=api.WriteResult),
    # workspace instructions
    Route("GET", "/workspace", workspace.get_instructions, "read",
          "workspace.md (text/markdown; JSON with Accept: application/json)", S,
          content_type="text/markdown", extra={"also": {"application/json": api.WorkspaceDoc}}),
    Route("PUT", "/workspace", workspace.put_instructions, "write",
          "Replace workspace.md (raw markdown, or JSON {content})", S, body=api.WorkspacePut,
          response=api.WorkspaceDoc,
          extra={"raw_body": ("text/markdown", "text/plain"),
                 "raw_schema": {"pattern": NOT_BLANK}}),
    Route("GET", "/workspace/versions", workspace.list_versions, "read", "Versions of workspace.md", S,
          response=list[api.Version], query=PAGE),
    Route("GET", "/workspace/versions/{sha}", workspace.get_version, "read",
          "workspace.md as of a version", S, response=api.WorkspaceDoc),
    Route("POST", "/workspace/rollback/{sha}", workspace.rollback, "write",
          "Restore workspace.md as of a version", S, response=api.WorkspaceDoc),
    Route("GET", "/workspace/changelog", workspace.changelog, "read",
          "History of workers, contexts and instructions, newest first", S,
          response=list[api.ChangelogEntry],
          query=(limit("at most 200 (default 50)"),
                 ("asset_types", "string", "comma list: worker,context,workspace_instructions",
                  {"pattern": "^(worker|context|workspace_instructions)"
                              "(,(worker|context|workspace_instructions))*$"}))),
]


from floom_git.http.handlers import issues as _issues  # noqa: E402  (its routes() needs Route)
from floom_git.http.handlers import export as _export  # noqa: E402
from floom_git.http.handlers import feedback as _feedback  # noqa: E402
from floom_git.http.handlers import sharing as _sharing  # noqa: E402

ROUTES += _issues.routes() + _sharing.routes() + _export.routes() + _feedback.routes()

from floom_git.http import git_http as _git_http  # noqa: E402  (its routes() needs Route)

ROUTES += _git_http.routes()

from floom_git.http.handlers import access_routes as _access  # noqa: E402  (its routes() needs Route)

ROUTES += _access.routes()

from floom_git.http.handlers import health as _health  # noqa: E402  (its routes() needs Route)

ROUTES += _health.routes()

from floom_git.http import metrics as _metrics  # noqa: E402  (its routes() needs Route)

ROUTES += _metrics.routes()

from floom_git.http.handlers import automation as _automation  # noqa: E402  (routes() needs Route)
from floom_git.http.handlers import runs as _runs  # noqa: E402

ROUTES += _automation.routes() + _runs.routes()  # export.csv before /runs/{id}

from floom_git.http import mcp_endpoint as _mcp_endpoint  # noqa: E402  (routes() needs Route)
from floom_git.http.handlers import composio as _composio  # noqa: E402
from floom_git.http.handlers import connections as _connections  # noqa: E402
from floom_git.http.handlers import mcp_tools as _mcp_tools  # noqa: E402

# /mcp-tools/serve before /mcp-tools/{id}; /connections/secrets before /connections/{id}
ROUTES += (_mcp_endpoint.routes() + _mcp_tools.routes() + _connections.routes()
           + _composio.routes())
from floom_git.http.handlers import executor_api as _executor_api  # noqa: E402

ROUTES += _executor_api.routes()

from floom_git.http.handlers import freeze as _freeze  # noqa: E402

ROUTES += _freeze.routes()
from floom_git.http.handlers import chat as _chat  # noqa: E402  (its routes() needs Route)

ROUTES += _chat.routes()


def register(app: web.Application, routes: list[Route]) -> dict[Handler, Route]:
    """Add every route under each prefix; return handler -> Route for the middleware."""
    specs: dict[Handler, Route] = {}
    for route in routes:
        prefixes = PREFIXES if route.aliases else ("",)
        for prefix in prefixes:
            app.router.add_route(route.method, prefix + route.path, route.handler)
        specs[route.handler] = route
    return specs

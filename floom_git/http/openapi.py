"""/openapi.json built from the route table and the msgspec schemas (the dashboard draws /docs
from it)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from floom_git import __version__, paths
from floom_git.http.keys import ROUTES_KEY
from floom_git.http.route import Route
from floom_git.schemas.api import Error
from floom_git.services.secrets import PLATFORM, RESERVED

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
TEXT = re.compile(r"^text/|\+json$|^application/(json|x-ndjson)$")
# Values that exist in every new workspace (workspace_template/): documented as examples, so a
# reader (and schemathesis) can try a route on something real, not only on ids that 404.
EXAMPLES: dict[tuple[str, str], str] = {
    ("git", "ws"): "default",
    ("workers", "id"): "word-count",
    ("workers", "worker_id"): "word-count",
    ("webhooks", "worker_id"): "word-count",
    ("contexts", "name"): "company",
    ("contexts", "path"): "about.md",
    ("workspaces", "id"): "default",
    ("issues", "id"): "ISSUE-0001",
}
# The rules the server applies to path parameters, keyed by (the segment before it, its name),
# so a generated request is one the server reads (and a value outside them is refused).
PATH_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("workers", "id"): {"pattern": paths.WORKER_ID_RE.pattern.replace("\\Z", "$")},
    ("contexts", "name"): {"pattern": paths.CONTEXT_NAME_RE.pattern.replace("\\Z", "$")},
    ("workspaces", "id"): {"pattern": paths.WORKSPACE_ID_RE.pattern.replace("\\Z", "$")},
    ("issues", "id"): {"pattern": "^ISSUE-[0-9]{4,}$"},
    ("secrets", "name"): {"pattern": "^[A-Z][A-Z0-9_]{0,63}$",
                          "not": {"enum": sorted(RESERVED | PLATFORM)}},
    ("versions", "sha"): {"pattern": "^[0-9a-fA-F]{4,40}$"},
    ("rollback", "sha"): {"pattern": "^[0-9a-fA-F]{4,40}$"},
}
UPLOAD_FIELDS = {"file": "binary", "path_prefix": "string", "create_if_missing": "string"}
ERROR_STATUSES = (400, 404, 409, 413, 422, 429)


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def error_statuses(route: Any) -> list[int]:
    """Every error status the route can answer: the common ones, 401/403 where a credential is
    checked (by the middleware, or by a public route itself), 503 where a workspace is acted
    on, 415 where a JSON body is read, and any the route declares in `extra["errors"]` (e.g.
    415 on git's RPC routes)."""
    codes = set(ERROR_STATUSES) | set(route.extra.get("errors", ()))
    if route.perm != "public":
        codes |= {401, 403}
    if route.perm not in ("public", "user"):
        codes.add(503)  # the workspace is fenced, or its working tree cannot follow main
    if route.body is not None:
        codes.add(415)  # a JSON body sent with another Content-Type
    return sorted(codes)


def _media(content_type: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is not None:
        return {"schema": schema}
    text = bool(TEXT.search(content_type))
    return {"schema": {"type": "string"} if text else {"type": "string", "format": "binary"}}


def _path_schema(path: str, name: str, r: Any) -> dict[str, Any]:
    before = path.split("{" + name)[0].rstrip("/").rsplit("/", 1)[-1]
    rule = r.extra.get("params", {}).get(name) or PATH_SCHEMAS.get((before, name), {})
    return {"type": "string", **rule}


def _parameters(r: Any) -> list[dict[str, Any]]:
    """Path parameters with the server's rules, then query parameters: (name, type, description)
    or (name, type, description, {JSON-schema bounds: minimum, enum, pattern, format...}), and
    then True for a parameter the route cannot do without."""
    params = []
    for name in _PARAM.findall(r.path):
        param: dict[str, Any] = {"name": name, "in": "path", "required": True,
                                 "schema": _path_schema(_PARAM.sub(r"{\1}", r.path), name, r)}
        if (r.tag, name) in EXAMPLES:
            param["example"] = EXAMPLES[(r.tag, name)]
        params.append(param)
    for name, kind, description, *rest in r.query:
        required = len(rest) > 1 and rest[1] is True
        # An empty value (`?status=`) means "not given", as in an HTML form.
        params.append({"name": name, "in": "query", "required": required,
                       "allowEmptyValue": not required,
                       "schema": {"type": kind, **(rest[0] if rest else {})},
                       "description": description})
    if r.perm not in ("public", "git"):
        params.append({"name": "x-workeros-workspace", "in": "header", "required": False,
                       "schema": {"type": "string"},
                       "description": "workspace id (default: default)"})
    return params


def _request_body(r: Any, by_type: dict[Any, Any]) -> dict[str, Any] | None:
    """JSON (`body`), raw bytes (`extra["raw_body"]`: True, or the content types taken) and
    multipart forms (`extra["multipart"]`: True for the upload fields, or {field: type}).
    Required unless `extra["body_optional"]` (an empty body decodes to the defaults)."""
    content: dict[str, Any] = {}
    if r.body is not None:
        content["application/json"] = {"schema": by_type[r.body]}
    elif "body_schema" in r.extra:  # a JSON body no msgspec type describes (JSON-RPC)
        content["application/json"] = {"schema": r.extra["body_schema"]}
    raw = r.extra.get("raw_body")
    for ctype in (("application/octet-stream", "text/plain") if raw is True else raw or ()):
        media = _media(ctype, None)
        if "raw_schema" in r.extra:
            # Any bytes are text of the body's type: only the stated rule can be broken.
            media = {"schema": dict(r.extra["raw_schema"])}
        content[ctype] = media
    form = r.extra.get("multipart")
    if form:
        fields = UPLOAD_FIELDS if form is True else form
        content["multipart/form-data"] = {"schema": {
            "type": "object",
            "properties": {name: {"type": "string",
                                  **({"format": "binary"} if kind == "binary" else {})}
                           for name, kind in fields.items()},
            "required": [name for name, kind in fields.items() if kind == "binary"]}}
    if not content:
        return None
    return {"required": not r.extra.get("body_optional"), "content": content}


def _responses(r: Any, by_type: dict[Any, Any]) -> dict[str, Any]:
    """The success status with every content type it may carry (`extra["also"]`: more content
    types, each with a msgspec type or None; `extra["also_statuses"]`: more success statuses
    without a body), then the error statuses (`extra["error_schema"]` / `["error_types"]`: the
    bodies of a route whose errors do not all come from this server, e.g. the MCP SDK's)."""
    ok: dict[str, Any] = {"description": "OK"}
    content: dict[str, Any] = {}
    if r.response is not None:
        content["application/json"] = {"schema": by_type[r.response]}
    elif r.content_type != "application/json":
        content[r.content_type] = _media(r.content_type, None)
    for ctype, kind in r.extra.get("also", {}).items():
        content[ctype] = _media(ctype, by_type[kind] if kind is not None else None)
    if content and r.status != 204:
        ok["content"] = content
    if r.extra.get("total_count"):
        ok["headers"] = {"X-Total-Count": {"description": "rows that match, over all pages",
                                           "schema": {"type": "integer", "minimum": 0}}}
    err_content = {"application/json": {"schema": r.extra.get("error_schema", by_type[Error])}}
    for ctype in r.extra.get("error_types", ()):
        err_content[ctype] = _media(ctype, None)
    err = {"description": "Error", "content": err_content}
    responses: dict[str, Any] = {str(r.status): ok}
    for code in r.extra.get("also_status", ()):  # e.g. 200 for an answer that created nothing
        responses[str(code)] = ok
    for code in r.extra.get("also_statuses", ()):  # e.g. 202 for an MCP notification
        responses[str(code)] = {"description": "Accepted (no body)"}
    for code in error_statuses(r):
        responses[str(code)] = err
    responses["429"] = {**err, "headers": {"Retry-After": {
        "description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}}}
    return responses


def build_spec(routes: list[Route]) -> dict[str, Any]:
    types: list[Any] = [Error]
    for r in routes:
        for t in (r.body, r.response, *r.extra.get("also", {}).values()):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        path = _PARAM.sub(r"{\1}", r.path)
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": f"{r.method.lower()}_{_slug(path)}",
            "x-floom-permission": r.perm,
        }
        if r.extra.get("validates"):
            # Content rules a JSON schema cannot state (a manifest that must validate, a ZIP
            # bundle, state such as an unknown device code): a well-formed request may be a 400.
            op["x-floom-validates"] = r.extra["validates"]
        params = _parameters(r)
        if params:
            op["parameters"] = params
        body = _request_body(r, by_type)
        if body is not None:
            op["requestBody"] = body
        op["responses"] = _responses(r, by_type)
        if r.perm == "git":
            op["security"] = [{"gitBasic": []}]
        elif r.perm != "public":
            op["security"] = [{"floomSecret": []}, {"floomToken": []}, {"bearer": []}]
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "floom-git", "version": __version__,
                 "description": "Every route is also served under /api, /v1 and /api/v1. "
                                "Errors are {\"detail\": \"...\", \"code\": \"...\"}: `code` is "
                                "machine-readable (invalid_input, not_found, conflict, "
                                "authorization_pending...)."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "floomSecret": {"type": "apiKey", "in": "header", "name": "x-floom-secret"},
                "floomToken": {"type": "apiKey", "in": "header", "name": "x-floom-token"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "gitBasic": {"type": "http", "scheme": "basic",
                             "description": "any user name; an API token or the shared secret"},
            },
        },
    }


async def openapi_json(request: web.Request) -> web.Response:
    spec = build_spec(request.app[ROUTES_KEY])
    return web.Response(body=msgspec.json.encode(spec), content_type="application/json")


def routes() -> list[Route]:
    """The spec's own route (the spec tests enumerate it beside ROUTES)."""
    return [
        Route("GET", "/openapi.json", openapi_json, "public", "This OpenAPI document", "system",
              aliases=False),
    ]

"""/docs: the API reference as a page, drawn by the vendored Swagger UI from /openapi.json
(no CDN, works offline), with the list of operations in plain HTML for readers without
JavaScript."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from floom_git.http.keys import ROUTES_KEY
from floom_git.http.openapi import build_spec

# Swagger UI sets style attributes as it draws; scripts stay limited to this server's files.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")


async def docs(request: web.Request) -> web.Response:
    spec = build_spec(request.app[ROUTES_KEY])
    operations = [{"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                   "tag": (op.get("tags") or [""])[0]}
                  for path, ops in spec["paths"].items() for method, op in ops.items()]
    response = aiohttp_jinja2.render_template("docs.html", request,
                                              {"operations": operations, "info": spec["info"]})
    response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "same-origin"})
    return response

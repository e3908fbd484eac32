"""Cookie-authenticated writes are same-origin only. A browser attaches the session cookie to
requests another site makes it send; such a request cannot set a JSON content type without a
CORS preflight (which this server never grants) and it carries the other site's Origin. So an
unsafe request signed in with the cookie must send JSON (or multipart where a route documents
it) and come from this server's origin. Token and secret headers are never sent by a browser on
its own, so requests that use them are not affected."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from floom_git.errors import Forbidden
from floom_git.http.keys import SETTINGS

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED = "Cross-site request refused"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(request: web.Request) -> set[str]:
    """This server's origin as the request reached it, and FLOOM_PUBLIC_URL's when set."""
    origins = {f"{request.scheme}://{request.host}".lower()}
    public = request.app[SETTINGS].public_url
    if public:
        origins.add(_origin_of(public))
    return origins


def same_origin(request: web.Request) -> None:
    """Forbidden unless the browser says the request comes from this server's own pages: the
    one CSRF rule of the API and the dashboard's form posts. Browsers send Origin (and
    Sec-Fetch-Site) on every such request and another site can forge neither; an Origin that is
    sent must be this server's even beside Sec-Fetch-Site: same-origin (SameSite=Lax still lets
    sites on the same host but another port send the cookie)."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    origin = request.headers.get("Origin")
    if fetch_site == "same-origin" and (origin is None or origin.lower() in own_origins(request)):
        return
    if origin is None or origin == "null":
        raise Forbidden(f"{REFUSED}: a write signed in with the session cookie must send an Origin "
                        "header (or Sec-Fetch-Site: same-origin); scripts should use a token")
    if origin.lower() not in own_origins(request) or fetch_site in ("cross-site", "same-site"):
        raise Forbidden(f"{REFUSED}: Origin {origin[:100]} is not this server "
                        f"({', '.join(sorted(own_origins(request)))})")


def json_body(request: web.Request, multipart: bool = False) -> None:
    """Forbidden unless the body is declared JSON (or multipart/form-data when allowed): the
    content types a cross-site form or a no-CORS fetch cannot send."""
    ctype = request.content_type
    if ctype == "application/json" or ctype.endswith("+json"):
        return
    if multipart and ctype == "multipart/form-data":
        return
    wanted = "application/json" + (" or multipart/form-data" if multipart else "")
    raise Forbidden(f"{REFUSED}: a write signed in with the session cookie must send Content-Type: "
                    f"{wanted}, not {ctype or 'none'}")


def check_cookie_write(request: web.Request, multipart: bool = False) -> None:
    """The whole rule for an unsafe request authenticated by the session cookie."""
    if request.method in SAFE_METHODS:
        return
    json_body(request, multipart)
    same_origin(request)

"""Connections: the metadata file `.floom/connections.yml` (labels, kinds, URLs, which secret
authenticates, allowed tools; never a credential), the API bodies and responses, and the checks an
API write and a push both run on the file.

    version: 1
    connections:
      - id: conn_0123456789ab
        label: docs
        kind: mcp
        url: https://mcp.example.com/mcp
        auth: {type: bearer, secret: DOCS_TOKEN}
      - {id: conn_ba9876543210, label: github, kind: app, app: github}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from floom_git.codec import load_yaml
from floom_git.errors import InvalidInput
from floom_git.paths import CONNECTIONS_FILE as CONNECTIONS_FILE  # its home is paths
from floom_git.schemas.base import Body, Out, Strict, documented
from floom_git.schemas.manifest import SecretName
from floom_git.schemas.patterns import explain, matching

ConnId = Annotated[str, matching(
    r"^conn_[0-9a-f]{12}$",
    "a connection id: `conn_` and 12 hex digits")]
Label = Annotated[str, matching(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "1 to 64 letters, digits, dots, dashes and underscores, starting with a letter or digit")]
AppSlug = Annotated[str, matching(
    r"^[a-z0-9][a-z0-9_-]{0,63}$",
    "an app slug of 1 to 64 lowercase letters, digits, dashes and underscores (e.g. `github`)")]
HeaderName = Annotated[str, matching(
    r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$",
    "a header name of 1 to 64 letters, digits and dashes (e.g. `X-Api-Key`)")]
RemoteToolName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# An http(s) URL with an ASCII host name (or a bracketed IPv6 address), no credentials and no
# spaces: check_url_shape holds a URL to exactly this, and the API documents it.
HTTP_URL = (r"^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
            r"(?:[/?#][^\x00-\x20\x7f]*)?$")
_HTTP_URL_RE = re.compile(HTTP_URL)
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2048)]
# Headers the HTTP client owns; a connection may not set them.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding",
                              "connection", "accept", "mcp-session-id", "mcp-protocol-version"})


class ConnAuth(Strict, kw_only=True):
    """How requests to the server authenticate: the value of workspace secret `secret`, sent as
    `Authorization: Bearer <value>` (bearer) or as header `name` (header)."""

    type: Literal["bearer", "header"]
    secret: SecretName
    name: HeaderName | None = None


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# Stated in the API's schema; check_entry refuses them (whatever their case) with its message.
SettableHeader = Annotated[HeaderName, msgspec.Meta(extra_json_schema={"not": {
    "pattern": "^(?:" + "|".join(_any_case(h) for h in sorted(RESERVED_HEADERS)) + ")$"}})]


class BearerAuthIn(Body, tag_field="type", tag="bearer", kw_only=True):
    """ConnAuth as a request gives it, one struct per type so the schema says what each needs."""

    secret: SecretName

    def stored(self) -> ConnAuth:
        return ConnAuth(type="bearer", secret=self.secret)


class HeaderAuthIn(Body, tag_field="type", tag="header", kw_only=True):
    secret: SecretName
    name: SettableHeader

    def stored(self) -> ConnAuth:
        return ConnAuth(type="header", secret=self.secret, name=self.name)


class ConnectionEntry(Strict, kw_only=True):
    id: ConnId
    label: Label
    kind: Literal["mcp", "app"]
    url: Url | None = None  # kind mcp: the server's streamable-HTTP endpoint
    app: AppSlug | None = None  # kind app: the catalog slug
    auth: ConnAuth | None = None
    allowed_tools: list[RemoteToolName] | None = None  # None: every tool the server lists
    scopes: list[str] | None = None
    created_at: str | None = None
    created_by: str | None = None


class ConnectionsFile(Strict, kw_only=True):
    version: Literal[1] = 1
    connections: list[ConnectionEntry] = []


# -- API bodies -----------------------------------------------------------------------------------
class McpConnectionCreate(Body, kw_only=True):
    label: Label
    url: Annotated[Url, documented(HTTP_URL, min_length=None)]
    auth: BearerAuthIn | HeaderAuthIn | None = None
    allowed_tools: list[RemoteToolName] | None = None


class AppConnectionCreate(Body, kw_only=True):
    app: AppSlug
    label: Label | None = None  # default: the app's slug
    scopes: list[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]] | None = None
    allowed_tools: list[RemoteToolName] | None = None


# -- API responses --------------------------------------------------------------------------------
class ConnectionOut(Out, kw_only=True):
    id: str
    label: str
    kind: str
    app: str | None
    url: str | None
    auth: dict[str, Any] | None  # {type, secret (a name), name}; never a value
    allowed_tools: list[str] | None
    scopes: list[str] | None
    status: str  # active | pending | missing_secret | error
    status_detail: str | None
    created_at: str | None
    created_by: str | None


class ConnectionStatus(Out, kw_only=True):
    id: str
    status: str
    status_detail: str | None
    updated_at: str | None
    expires_at: str | None = None  # OAuth access token expiry
    last_test: dict[str, Any] | None = None


class RemoteTool(Out, kw_only=True):
    name: str
    description: str | None
    input_schema: dict[str, Any]
    allowed: bool


class ConnectionTest(Out, kw_only=True):
    id: str
    ok: bool
    latency_ms: int
    server: dict[str, Any] | None
    tools: list[RemoteTool]
    error: str | None
    tested_at: str


class ActivityItem(Out, kw_only=True):
    run_id: str | None
    worker_id: str | None
    tool: str
    ok: bool
    at: str
    duration_ms: int
    error: str | None = None


class ConnectionActivity(Out, kw_only=True):
    id: str
    runs: list[dict[str, Any]]  # {run_id, worker_id, calls, errors, last_at}, newest first
    calls: list[ActivityItem]  # the latest calls, newest first


class ConnectionSecret(Out, kw_only=True):
    name: str
    status: str  # set | missing
    connections: list[str]  # ids of the connections that authenticate with it
    updated_at: float | None = None


class OAuthStarted(Out, kw_only=True):
    connection_id: str
    status: str  # pending (go to authorization_url), or active when the app needs no sign-in
    authorization_url: str | None
    expires_at: str | None = None


class OAuthDone(Out, kw_only=True):
    connection_id: str
    workspace_id: str
    status: str


# -- checks -----------------------------------------------------------------------------------
def check_url_shape(url: str, where: str) -> None:
    """InvalidInput unless `url` matches HTTP_URL and names a host urlsplit can read."""
    if "@" in re.split(r"[/?#]", url.split("://", 1)[-1], maxsplit=1)[0]:
        raise InvalidInput(
            f"{where}: credentials in the URL are not allowed; use auth with a secret"
        )
    try:
        host = urlsplit(url).hostname if _HTTP_URL_RE.match(url) else None
    except ValueError:  # a bracketed host that is no IPv6 address
        host = None
    if not host:
        raise InvalidInput(f"{where}: must be an http(s) URL with a host")


def check_entry(c: ConnectionEntry, where: str) -> None:
    """Kind-specific rules of one entry; InvalidInput naming `where` (a `$.path`)."""
    if c.kind == "mcp":
        if c.url is None or c.app is not None:
            raise InvalidInput(f"an mcp connection needs `url` and no `app` - at `{where}`")
        check_url_shape(c.url, f"url - at `{where}.url`")
    elif c.app is None:
        raise InvalidInput(f"an app connection needs `app` - at `{where}`")
    if c.auth is not None:
        if c.auth.type == "header" and c.auth.name is None:
            raise InvalidInput(f"a header auth needs the header `name` - at `{where}.auth`")
        if c.auth.name is not None and c.auth.name.lower() in RESERVED_HEADERS:
            raise InvalidInput(
                f"header {c.auth.name} cannot be set by a connection - at `{where}.auth`"
            )


def parse_connections_file(data: bytes, where: str = CONNECTIONS_FILE) -> ConnectionsFile:
    """Parse and check the file: schema, kind rules, unique ids and labels. Raises InvalidInput
    starting with `where`; an empty file has no connections."""
    raw = load_yaml(data, where=where)
    if raw is None:
        return ConnectionsFile()
    try:
        parsed = msgspec.convert(raw, ConnectionsFile)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {explain(exc)}") from None
    ids: set[str] = set()
    labels: set[str] = set()
    for i, c in enumerate(parsed.connections):
        at = f"$.connections[{i}]"
        try:
            check_entry(c, at)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
        if c.id in ids or c.label in labels:
            what = f"id '{c.id}'" if c.id in ids else f"label '{c.label}'"
            raise InvalidInput(f"{where}: duplicate connection {what} - at `{at}`")
        ids.add(c.id)
        labels.add(c.label)
    return parsed


def check_connections_file(data: bytes, where: str = CONNECTIONS_FILE) -> list[str]:
    try:
        parse_connections_file(data, where)
    except InvalidInput as exc:
        return [exc.message]
    return []

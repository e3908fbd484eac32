"""The integrations catalog: apps a workspace can connect to (the file shipped in the package and
the operator's system/integrations.yml), and how the API shows them (never a client secret)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from floom_git.schemas.base import Out, Strict
from floom_git.schemas.connections import AppSlug
from floom_git.schemas.manifest import SecretName
from floom_git.schemas.patterns import matching

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
HttpUrl = Annotated[str, matching(r"^https?://", "an http:// or https:// URL", max_length=2048)]


class CatalogTool(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A tool of a catalog app, as the file holds it and as the API answers it (so no
    omit_defaults: a response keeps every field)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    description: Text


class OAuthSpec(Strict, kw_only=True):
    authorize_url: HttpUrl
    token_url: HttpUrl
    scopes: list[str] = []
    extra_params: dict[str, str] = {}  # added to the authorization URL (e.g. access_type)
    token_auth: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"
    # Only in the operator's file (system/ is server-private); never shown by the API.
    client_id: str | None = None
    client_secret: str | None = None


class ApiKeySpec(Strict, kw_only=True):
    secret: SecretName  # the workspace secret holding the key, sent as a Bearer token
    header: str | None = None  # another header than Authorization, when the app wants one


class CatalogApp(Strict, kw_only=True):
    slug: AppSlug
    name: Text
    category: Annotated[str, matching(
        r"^[a-z0-9][a-z0-9-]{0,39}$",
        "1 to 40 lowercase letters, digits and dashes, starting with a letter or digit")]
    description: Text
    auth: Literal["oauth2", "api_key", "none"]
    homepage: HttpUrl | None = None
    oauth: OAuthSpec | None = None
    api_key: ApiKeySpec | None = None
    mcp_url: HttpUrl | None = None  # the app's hosted MCP server (streamable HTTP)
    tools: list[CatalogTool] = []


class CatalogFile(Strict, kw_only=True):
    version: Literal[1] = 1
    apps: list[CatalogApp] = []


class CatalogAppOut(Out, kw_only=True):
    slug: str
    name: str
    category: str
    description: str
    homepage: str | None
    auth: str
    scopes: list[str]
    mcp_url: str | None
    tool_count: int
    oauth_configured: bool  # an OAuth client id and secret are set for this app
    source: str  # builtin | operator


class CatalogPage(Out, kw_only=True):
    items: list[CatalogAppOut]
    total: int
    page: int
    limit: int
    categories: list[str]


class EventRun(Out, kw_only=True):
    worker_id: str
    run_id: str | None = None
    deduped: bool = False
    skipped: str | None = None  # why no run started (e.g. a required input is missing)


class ComposioAccepted(Out, kw_only=True):
    status: str  # accepted
    delivery_id: str
    event: str  # the trigger slug
    runs: list[EventRun]
    deduped: bool  # every matching worker had already run for this delivery

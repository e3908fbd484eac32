"""The integrations catalog: the file shipped in the package merged with the operator's
system/integrations.yml (re-read when it changes; an entry with a known slug is merged over the
shipped one), searched and paged for the API; and the OAuth client of an app: the operator's file
first, else the workspace secrets <SLUG>_OAUTH_CLIENT_ID and <SLUG>_OAUTH_CLIENT_SECRET."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec

from floom_git.codec import load_yaml
from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.schemas.integrations import CatalogApp, CatalogAppOut, CatalogFile, CatalogPage
from floom_git.schemas.patterns import explain

BUILTIN_FILE = Path(__file__).resolve().parent.parent / "data" / "integrations.yml"
OPERATOR_FILE = "integrations.yml"


def client_secret_names(slug: str) -> tuple[str, str]:
    """The workspace secrets that hold an app's OAuth client id and secret."""
    stem = slug.upper().replace("-", "_")
    return f"{stem}_OAUTH_CLIENT_ID", f"{stem}_OAUTH_CLIENT_SECRET"


def _entries(data: bytes, where: str) -> list[dict[str, Any]]:
    raw = load_yaml(data, where=where)
    if raw is None:
        return []
    apps = raw.get("apps") if isinstance(raw, dict) else None
    if not isinstance(apps, list) or not all(isinstance(a, dict) for a in apps):
        raise InvalidInput(f"{where}: expected `apps:` as a list of mappings - at `$.apps`")
    return apps


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **over}
    if isinstance(base.get("oauth"), dict) and isinstance(over.get("oauth"), dict):
        merged["oauth"] = {**base["oauth"], **over["oauth"]}
    return merged


class Catalog:
    def __init__(self, system_dir: Path, builtin: Path = BUILTIN_FILE) -> None:
        self._operator = system_dir / OPERATOR_FILE
        self._builtin = builtin
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._apps: dict[str, CatalogApp] = {}
        self._sources: dict[str, str] = {}

    def _stamp(self) -> tuple[float, int]:
        try:
            st = self._operator.stat()
        except FileNotFoundError:
            return (0.0, -1)
        return (st.st_mtime, st.st_size)

    def apps(self) -> dict[str, CatalogApp]:
        """slug -> app. Conflict naming the operator's file when it does not validate."""
        stamp = self._stamp()
        with self._lock:
            if stamp != self._seen:
                self._load(stamp)
            return self._apps

    def _load(self, stamp: tuple[float, int]) -> None:
        raw = {e.get("slug"): e for e in _entries(self._builtin.read_bytes(), "integrations.yml")}
        sources = {slug: "builtin" for slug in raw}
        if stamp[1] >= 0:
            where = f"system/{OPERATOR_FILE}"
            try:
                for entry in _entries(self._operator.read_bytes(), where):
                    slug = entry.get("slug")
                    raw[slug] = _merge(raw[slug], entry) if slug in raw else entry
                    sources[slug] = "operator"
            except InvalidInput as exc:
                raise Conflict(exc.message) from None
        try:
            parsed = msgspec.convert({"version": 1, "apps": list(raw.values())}, CatalogFile)
        except msgspec.ValidationError as exc:
            raise Conflict(f"system/{OPERATOR_FILE} (merged with the shipped catalog): "
                           f"{explain(exc)}") from None
        for app in parsed.apps:
            if app.auth == "oauth2" and app.oauth is None:
                raise Conflict(f"integrations: app {app.slug} uses oauth2 but has no `oauth` block")
            if app.auth == "api_key" and app.api_key is None:
                raise Conflict(
                    f"integrations: app {app.slug} uses api_key but has no `api_key` block"
                )
        self._apps = {a.slug: a for a in sorted(parsed.apps, key=lambda a: a.name.lower())}
        self._sources = {a.slug: sources.get(a.slug, "builtin") for a in parsed.apps}
        self._seen = stamp

    def get(self, slug: str) -> CatalogApp:
        app = self.apps().get(slug)
        if app is None:
            raise NotFound(f"App {slug[:64]} is not in the integrations catalog")
        return app

    def out(self, app: CatalogApp, secret_names: set[str]) -> CatalogAppOut:
        return CatalogAppOut(
            slug=app.slug,
            name=app.name,
            category=app.category,
            description=app.description,
            homepage=app.homepage,
            auth=app.auth,
            scopes=list(app.oauth.scopes) if app.oauth else [],
            mcp_url=app.mcp_url,
            tool_count=len(app.tools),
            oauth_configured=oauth_configured(app, secret_names),
            source=self._sources.get(app.slug, "builtin"),
        )

    def page(self, *, search: str | None, category: str | None, page: int, limit: int,
             secret_names: set[str]) -> CatalogPage:
        apps = list(self.apps().values())
        needle = (search or "").lower()
        matched = [a for a in apps
                   if (not category or a.category == category)
                   and (not needle or needle in f"{a.slug} {a.name} {a.description}".lower())]
        start = (page - 1) * limit
        return CatalogPage(items=[self.out(a, secret_names) for a in matched[start:start + limit]],
                           total=len(matched), page=page, limit=limit,
                           categories=sorted({a.category for a in apps}))


def oauth_configured(app: CatalogApp, secret_names: set[str]) -> bool:
    """Whether the app has an OAuth client: in the operator's file, or in workspace secrets."""
    if app.oauth is None:
        return False
    if app.oauth.client_id and app.oauth.client_secret:
        return True
    return all(name in secret_names for name in client_secret_names(app.slug))

"""What the dashboard serves besides pages: the vendored front-end files are the pinned ones
(with their licenses), /docs loads only files from this server, and the dashboard stays in its
layer (it reaches data only through the REST handlers and services)."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest

import floom_git

PACKAGE = Path(floom_git.__file__).resolve().parent
VENDOR = PACKAGE / "dashboard" / "static" / "vendor"


def _pins() -> dict[str, str]:
    pins = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        pins[name] = digest
    return pins


def test_vendored_files_match_their_pins_and_carry_licenses():
    pins = _pins()
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*")
               if p.is_file() and p.parent != VENDOR}
    assert on_disk == set(pins), "every vendored file is pinned, and only those"
    for name, digest in pins.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {"htmx/LICENSE", "swagger-ui/LICENSE", "swagger-ui/NOTICE"} <= set(pins)


async def test_get_docs_loads_only_this_servers_files(visitor):
    resp = await visitor.get("/docs")
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/openapi.json" in assets
    assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        if asset.startswith("/ui/static/"):
            served = await visitor.get(asset)
            assert served.status == 200, asset
    bundle = await visitor.get("/ui/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.content_type in ("application/javascript", "text/javascript")


async def test_get_static_files_and_nothing_outside_them(visitor):
    for name, kind in (("app.css", "text/css"), ("app.js", "javascript"),
                       ("vendor/htmx/htmx.min.js", "javascript")):
        resp = await visitor.get(f"/ui/static/{name}")
        assert resp.status == 200 and kind in resp.content_type, name
    resp = await visitor.get("/ui/static/../views/auth.py")
    assert resp.status in (403, 404)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "dashboard").rglob("*.py")),
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_dashboard_never_reaches_past_handlers_and_services(path):
    bad = {
        n
        for n in _imports(path)
        if n.split(".")[0] == "pygit2" or n.startswith(("floom_git.storage", "floom_git.runtime"))
    }
    assert not bad, f"{path.name} imports {bad}"


def _imports_dashboard(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "floom_git":
            if any(alias.name == "dashboard" for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "floom_git.dashboard"):
            return True
        elif isinstance(node, ast.Import) and any(
                a.name.startswith("floom_git.dashboard") for a in node.names):
            return True
    return False


def test_only_the_composition_root_knows_the_dashboard():
    users = [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
             if _imports_dashboard(p) and "dashboard" not in p.relative_to(PACKAGE).parts]
    assert users == ["http/app.py"]

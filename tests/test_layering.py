"""The import direction is http -> services -> storage -> pygit2: fail when a layer reaches past it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "floom_git"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("http"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_http_never_imports_pygit2_or_storage_internals(path):
    bad = {n for n in _imports(path) if n == "pygit2" or n.startswith("pygit2.")}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("services") + _modules("storage") + _modules("schemas")
                         + _modules("mcp"),
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_services_and_storage_never_import_aiohttp_or_http(path):
    bad = {n for n in _imports(path) if n.split(".")[0] == "aiohttp" or n.startswith("floom_git.http")}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("storage"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_storage_never_imports_services(path):
    bad = {n for n in _imports(path) if n.startswith("floom_git.services") or n.startswith("floom_git.runtime")}
    assert not bad, f"{path.name} imports {bad}"


def test_only_config_and_cli_read_the_environment():
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("config.py", "cli.py") or "hooks" in path.parts:
            continue
        text = path.read_text()
        if "os.environ[" in text or "os.getenv(" in text or "os.environ.get(" in text:
            readers.append(path.relative_to(PACKAGE).as_posix())
    assert readers == [], f"only config.py/cli.py may read the environment: {readers}"


@pytest.mark.parametrize("path", _modules("client"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_client_talks_to_the_server_only_over_http(path):
    inner = ("floom_git.storage", "floom_git.services", "floom_git.runtime", "floom_git.http",
             "pygit2")
    bad = {n for n in _imports(path) if n.startswith(inner)}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("agents"), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_agents_are_a_library_below_services(path):
    """The agent runtime is called by the run engine and the chat; it never reaches up into
    them, into HTTP, or into git."""
    up = ("floom_git.http", "floom_git.runtime", "floom_git.services", "floom_git.hooks")
    bad = {n for n in _imports(path)
           if n.split(".")[0] in ("aiohttp", "pygit2") or n.startswith(up)}
    assert not bad, f"{path.name} imports {bad}"

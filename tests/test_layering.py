"""The import direction is http/dashboard/mcp -> runtime -> services -> storage -> leaves
(schemas, errors, paths, codec), with pygit2 below storage: fail when a layer reaches past it or
when modules import each other in a circle (docs/architecture.md)."""

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
    bad = {
        n for n in _imports(path) if n.split(".")[0] == "aiohttp" or n.startswith("floom_git.http")
    }
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "path", _modules("storage"), ids=lambda p: p.relative_to(PACKAGE).as_posix()
)
def test_storage_never_imports_services(path):
    bad = {
        n
        for n in _imports(path)
        if n.startswith("floom_git.services") or n.startswith("floom_git.runtime")
    }
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


@pytest.mark.parametrize(
    "path", _modules("client"), ids=lambda p: p.relative_to(PACKAGE).as_posix()
)
def test_client_talks_to_the_server_only_over_http(path):
    inner = ("floom_git.storage", "floom_git.services", "floom_git.runtime", "floom_git.http",
             "pygit2")
    bad = {n for n in _imports(path) if n.startswith(inner)}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "path", _modules("agents"), ids=lambda p: p.relative_to(PACKAGE).as_posix()
)
def test_agents_are_a_library_below_services(path):
    """The agent runtime is called by the run engine and the chat; it never reaches up into
    them, into HTTP, or into git."""
    up = ("floom_git.http", "floom_git.runtime", "floom_git.services", "floom_git.hooks")
    bad = {n for n in _imports(path)
           if n.split(".")[0] in ("aiohttp", "pygit2") or n.startswith(up)}
    assert not bad, f"{path.name} imports {bad}"


# -- the module graph, from the AST ---------------------------------------------------------------
# Leaves: pure modules every layer may use; they import nothing of the package but each other.
LEAVES = ("floom_git.errors", "floom_git.paths", "floom_git.codec", "floom_git.schemas")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The package module an import names (for `from a.b import c`: a.b.c if it is a module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _runtime_imports(module: str) -> set[str]:
    """Every module of the package `module` imports when it runs (function-local imports
    included: they are how a cycle hides), leaving out `if TYPE_CHECKING:` blocks."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names = [base] + [f"{base}.{alias.name}" for alias in child.names]
            for name in names:
                target = _resolve(name) if name.startswith("floom_git") else None
                if target is not None and target != module:
                    found.add(target)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


GRAPH = {module: _runtime_imports(module) for module in MODULES}


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _third_party(module: str) -> set[str]:
    return {n.split(".")[0] for n in _imports(MODULES[module]) if not n.startswith("floom_git")}


def test_no_import_cycles():
    """Tarjan's strongly connected components over the runtime import graph: none may hold
    more than one module (a module importing its own package counts)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            connect(module)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if _under(m, "floom_git.http", "floom_git.dashboard")))
def test_http_and_dashboard_never_import_storage(module):
    """What a handler needs from below comes through services (or a leaf)."""
    bad = {m for m in GRAPH[module] if _under(m, "floom_git.storage")}
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, *LEAVES)))
def test_leaves_import_only_leaves(module):
    bad = {m for m in GRAPH[module] if not _under(m, *LEAVES) and m != "floom_git"}
    assert not bad, f"{module} imports {bad}"
    assert not _third_party(module) & {"aiohttp", "pygit2"}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _under(m, "floom_git.storage")))
def test_storage_never_imports_services_runtime_or_http(module):
    up = ("floom_git.services", "floom_git.runtime", "floom_git.http", "floom_git.dashboard",
          "floom_git.mcp", "floom_git.agents")
    bad = {m for m in GRAPH[module] if _under(m, *up)}
    assert not bad, f"{module} imports {bad}"


def test_pygit2_only_in_storage_hooks_and_the_push_policy():
    allowed = ("floom_git.storage", "floom_git.hooks", "floom_git.services.push")
    users = {m for m in MODULES if "pygit2" in _third_party(m) and not _under(m, *allowed)}
    assert users == set(), "import pygit2 only in storage/ (git_types re-exports the types)"


def test_nothing_above_storage_reaches_pygit2_through_the_repo_attribute():
    """`ws.repo.repo` is the pygit2 Repository: above storage, what a service needs of it comes
    through a storage function (storage/repo_info.py), so pygit2 stays below."""
    allowed = ("floom_git.storage", "floom_git.hooks", "floom_git.services.push")
    users = set()
    for module, path in MODULES.items():
        if _under(module, *allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Attribute) and node.attr == "repo"):
                continue
            inner = node.value  # `ws.repo.repo` or `repo.repo`
            if getattr(inner, "attr", None) == "repo" or getattr(inner, "id", None) == "repo":
                users.add(module)
    assert users == set()


def _reads_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if {a.name for a in node.names} & {"environ", "getenv", "environb"}:
                return True
    return False


def test_only_config_and_entry_points_read_the_environment():
    """Settings come from config.py; only the entry points (the CLI, the git hook) see the
    process environment, and hand it on explicitly."""
    entry_points = {"floom_git.config", "floom_git.cli", "floom_git.hooks.pre_receive"}
    readers = {m for m, p in MODULES.items() if _reads_environment(p)}
    assert readers - entry_points == set()


def test_only_the_composition_root_reads_the_route_table():
    """Handlers never import the table that lists them (floom_git/http/routes/)."""
    readers = {m for m, deps in GRAPH.items()
               if "floom_git.http.routes" in deps and not _under(m, "floom_git.http.routes")}
    assert readers == {"floom_git.http.app"}


def test_every_app_and_request_key_is_made_in_http_keys():
    makers = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("AppKey", "RequestKey")):
                makers.add(module)
    assert makers == {"floom_git.http.keys"}


def _runs_threads(path: Path) -> bool:
    """`asyncio.to_thread(...)`, `to_thread(...)` or `loop.run_in_executor(...)` in the module."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("to_thread", "run_in_executor"):
                return True
    return False


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if _under(m, "floom_git.http", "floom_git.dashboard",
                                                    "floom_git.mcp")))
def test_http_never_runs_blocking_work_itself(module):
    """Services are the async boundary: a handler awaits a service function, and the service
    (or storage) decides what runs in a thread."""
    assert not _runs_threads(MODULES[module]), f"{module} calls to_thread: move it into a service"


def test_no_state_rides_on_objects_through_vars():
    """What a workspace carries is a typed field of Workspace (the run store, the conversation
    store, the freeze), never an attribute slipped in through vars(); and the run engine is
    given to the run store at construction, not installed on it (`store.hooks = ...`)."""
    found = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "vars" and module != "floom_git.logs"):
                found.add(f"{module}: vars()")
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Attribute) and t.attr == "hooks" for t in node.targets):
                found.add(f"{module}: .hooks =")
    assert found == set()


def test_modules_stay_small():
    """One noun per module (STYLE.md): none over 500 lines, and the median at most 150."""
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > 500} == {}
    ordered = sorted(sizes.values())
    assert ordered[len(ordered) // 2] <= 150

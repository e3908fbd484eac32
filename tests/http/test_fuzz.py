"""API fuzzing with schemathesis against the server's own /openapi.json: every documented
operation, authenticated as an admin, bounded and derandomized. A 5xx, an undocumented status,
a wrong content type, a body that breaks its schema or an accepted request that breaks the spec
fails; so does a route missing from the spec."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    object_level_authorization,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from floom_git.config import Settings
from floom_git.http import openapi
from floom_git.http.app import create_app
from floom_git.http.keys import IDENTITY, MANAGER, PAGES_KEY
from floom_git.http.routes import PREFIXES, ROUTES

SECRET = "fuzz-secret-0123456789"
CREDENTIAL_HEADERS = ("x-floom-secret", "x-floom-token", "authorization")
# per operation (FLOOM_FUZZ_EXAMPLES to dig deeper); 122 operations take about 2 minutes on 2
# busy cores
MAX_EXAMPLES = int(os.environ.get("FLOOM_FUZZ_EXAMPLES", "15"))



def documented_positive_data_acceptance(ctx, response, case):  # type: ignore[no-untyped-def]
    """positive_data_acceptance, except that an operation declaring `x-floom-validates` (a content
    rule no JSON schema can state: a manifest that must validate, a ZIP bundle, a pending device
    code) may answer 400 to a well-formed request; the rule is named in the spec."""
    validates = case.operation.definition.raw.get("x-floom-validates")
    if validates and response.status_code == 400:
        return None
    return positive_data_acceptance(ctx, response, case)


def text_body_negative_data_rejection(ctx, response, case):  # type: ignore[no-untyped-def]
    """negative_data_rejection, except when a text/* body (workspace.md, context files) is the only
    negated part: the body is sent as the text of the value, and any text is a valid body there,
    so a body "negated" to `true` arrives as the valid text "true". schemathesis makes this
    exception for text/plain only. The coverage phase names the negated part in its phase data,
    the fuzzing phase in the case's components: both are read."""
    meta = case.meta
    if meta is not None and (case.media_type or "").startswith("text/"):
        negated = {loc for loc, info in meta.components.items() if info.mode.is_negative}
        location = getattr(meta.phase.data, "parameter_location", None)
        if location is not None:
            negated.add(location)
        if negated == {ParameterLocation.BODY}:
            return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    text_body_negative_data_rejection,  # a request that breaks the spec must not be accepted
    unsupported_method,  # a method the path does not serve is 405
    documented_positive_data_acceptance,  # a request the spec allows must not be refused
    missing_required_header,
    allow_header_conformance,
    ignored_auth,  # a request without (or with a wrong) credential must be refused
    use_after_free,
    ensure_resource_availability,
    object_level_authorization,
]


class LiveServer:
    """The real app on a loopback port, served by its own event loop in a thread: the fuzzer's
    HTTP client is synchronous and would otherwise block the loop it talks to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="fuzz-server", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test thread by start())
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.app = create_app(self.settings)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Run a blocking function in the server's loop thread (the app's stores live there)."""

        async def run():  # type: ignore[no-untyped-def]
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(60)

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(60):
            raise RuntimeError("the server did not start within 60 s")
        if self.error is not None:
            raise self.error

    async def _stop(self) -> None:
        await self.runner.cleanup()
        # connections aiohttp's parser refused may leave their handler tasks behind
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    live = LiveServer(
        Settings(
            data_dir=data,
            secret=SECRET,
            shared_secret_role="admin",
            watch=False,
            scheduler=False,
            argon2_profile="CHEAPEST",
            rate_list_per_minute=0,
            rate_auth_per_minute=0,
            rate_login_per_minute=0,
            rate_auth_fail_per_minute=0,
            webhook_rate_limit=1_000_000,
            max_concurrent_runs=1,
            composio_webhook_signing_key="fuzz-composio-key",
        )
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def user_token(server: LiveServer) -> str:
    """A signed-in owner's personal token, for the routes the shared secret may not use."""
    identity = server.app[IDENTITY]
    user = server.call(identity.users.create, "fuzzer", email="fuzzer@example.com", is_admin=True)
    server.call(identity.members.add, server.app[MANAGER].get("default").uid, user.id, "owner")
    token, _ = server.call(identity.tokens.mint, user_id=user.id, kind="personal", name="fuzz")
    return token


# Raw bodies (ZIP bundles, git's pkt-line requests) are bytes like application/octet-stream.
for _media in (
    "application/zip",
    "application/x-git-upload-pack-request",
    "application/x-git-receive-pack-request",
):
    schemathesis.serializer.alias(_media, "application/octet-stream")

# Built at import so that each operation is its own test item; the server serves the same
# document (test_get_openapi_live_spec_matches_fuzzed_spec), so this is the server's own spec.
SPEC = openapi.build_spec(list(ROUTES) + openapi.routes())
schema = schemathesis.openapi.from_dict(SPEC)


def _headers(case, user_token: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Admin through the shared secret; a signed-in user's token where the route needs a stored
    user (personal tokens, device approval); Basic auth on git routes."""
    perm = case.operation.definition.raw.get("x-floom-permission")
    if perm == "git":
        basic = base64.b64encode(f"fuzz:{SECRET}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if perm == "user":
        return {"x-floom-token": user_token}
    return {"x-floom-secret": SECRET}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_every_operation_conforms_to_spec(  # type: ignore[no-untyped-def]
    case, server: LiveServer, user_token: str
) -> None:
    # Credentials are ours, not generated: a generated x-floom-token would decide the request
    # (401) and hide everything behind it; ignored_auth probes without them on its own. A case
    # whose point is a malformed credential is sent as generated.
    if _negated_credential(case):
        case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=60)
        return
    for name in [h for h in case.headers or {} if h.lower() in CREDENTIAL_HEADERS]:
        del case.headers[name]
    case.call_and_validate(
        base_url=server.url, headers=_headers(case, user_token), checks=CHECKS, timeout=60
    )


def _negated_credential(case) -> bool:  # type: ignore[no-untyped-def]
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    names = [getattr(data, "parameter", None)]
    names += [m.parameter for m in getattr(data, "mutations", None) or ()]
    return any(n and n.lower() in CREDENTIAL_HEADERS for n in names)


def test_get_openapi_live_spec_matches_fuzzed_spec(server: LiveServer) -> None:
    assert requests.get(f"{server.url}/openapi.json", timeout=30).json() == SPEC


def test_list_routes_every_route_is_in_spec(server: LiveServer) -> None:
    """Every API route is documented; the only routes left out are the dashboard's HTML pages,
    which live under /ui/ (or are / and /docs) and never take a method and path the API
    documents."""
    spec = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    pages = {(m, re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", p)) for m, p in server.app[PAGES_KEY]}
    missing = []
    for route in server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if route.method in ("HEAD", "*") or path is None:
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", path)
        if (route.method, path) in pages:
            continue  # an HTML page for people, checked below
        aliased = {path[len(p) :] for p in PREFIXES if p and path.startswith(p + "/")}
        if aliased & {p for m, p in documented if m == route.method}:
            continue  # an /api, /v1 or /api/v1 alias of a documented route
        if (route.method, path) not in documented:
            missing.append(f"{route.method} {path}")
    assert not missing, f"routes missing from /openapi.json: {missing}"
    stray = [(m, p) for m, p in pages if not (p.startswith("/ui/") or p in ("/", "/docs"))]
    assert not stray, f"dashboard pages outside /ui/: {stray}"
    assert not pages & documented, "a dashboard page shadows an API route"


def test_a_file_of_its_own_type_and_an_empty_put_conform_to_the_spec(server: LiveServer) -> None:
    # Found by the fuzz when the operations ran in another order: a context file is served as
    # its own type (text/markdown here), and a PUT without a body stores an empty file.
    headers = {"x-floom-secret": SECRET}
    made = requests.post(f"{server.url}/contexts/typed-files", json={}, headers=headers,
                         timeout=60)
    assert made.status_code in (200, 201), made.text
    files = schema["/contexts/{name}/files/{path}"]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    empty = files["PUT"].Case(path_parameters={"name": "typed-files", "path": "empty.md"})
    answer = empty.call_and_validate(base_url=server.url, headers=headers, checks=checks)
    assert answer.status_code == 200 and answer.json()["size"] == 0
    written = requests.put(f"{server.url}/contexts/typed-files/files/notes.md", data=b"# notes\n",
                           headers={**headers, "content-type": "text/markdown"}, timeout=60)
    assert written.status_code == 200, written.text
    read = files["GET"].Case(path_parameters={"name": "typed-files", "path": "notes.md"})
    answer = read.call_and_validate(base_url=server.url, headers=headers, checks=checks)
    assert answer.headers["content-type"][0].startswith("text/markdown")
    assert answer.content == b"# notes\n"

"""The real `git` client against the real server on a port: clone, fetch (v2, gzip), validated
pushes with their `remote:` messages, floom/runs, and pushes racing API writes."""

from __future__ import annotations

import asyncio
import base64
import gzip
import subprocess
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from floom_git.config import Settings
from floom_git.http.git_http import TRANSPORT
from floom_git.http.keys import MANAGER
from floom_git.storage.repo import RUNS, Changeset, signature
from tests.conftest import AUTH, SECRET, WORKER_YML, add_member, git

MAX_FILE = 64 * 1024
DEADLINE = 20.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(max_file_bytes=MAX_FILE)


@dataclass
class Result:
    code: int
    out: str
    err: str


class Git:
    """Runs the git client without blocking the event loop the server lives on."""

    def __init__(self, server, env: dict[str, str], tmp: Path) -> None:
        self.port = server.port
        self.env = env
        self.tmp = tmp
        self.ws_path = server.app[MANAGER].get("default").path

    def url(self, ws: str = "default", suffix: str = ".git", password: str | None = SECRET) -> str:
        cred = f"anyone:{password}@" if password is not None else ""
        return f"http://{cred}127.0.0.1:{self.port}/git/{ws}{suffix}"

    async def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> Result:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=str(cwd or self.tmp),
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        if check and result.code != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {result.err}")
        return result

    async def clone(self, name: str = "c", **url: str | None) -> Path:
        await self("clone", "-q", self.url(**url), name)  # type: ignore[arg-type]
        return self.tmp / name

    async def commit(
        self, repo: Path, files: dict[str, str | bytes | None], msg: str = "edit"
    ) -> str:
        for rel, content in files.items():
            path = repo / rel
            if content is None:
                await self("rm", "-q", "-r", rel, cwd=repo)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            await self("add", "-f", rel, cwd=repo)
        await self("commit", "-q", "-m", msg, cwd=repo)
        return (await self("rev-parse", "HEAD", cwd=repo)).out.strip()

    def server_main(self) -> str:
        return git(self.ws_path, "rev-parse", "main").strip()


@pytest.fixture
def gitc(server, git_env, tmp_path) -> Git:
    return Git(server, git_env, tmp_path)


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()}


def manifest(name: str, title: str = "Hi", extra: str = "") -> str:
    return WORKER_YML.format(name=name, title=title) + extra


# -- clone and auth -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".git", ""])
async def test_clone_workspace_with_credentials_in_url(gitc, suffix):
    repo = await gitc.clone(suffix=suffix)
    assert (repo / "workers/word-count/worker.yml").is_file()
    log = (await gitc("log", "--format=%s", cwd=repo)).out
    assert "workspace: create default" in log
    assert (await gitc("rev-parse", "HEAD", cwd=repo)).out.strip() == gitc.server_main()


@pytest.mark.parametrize(
    "password, message",
    [
        (None, "could not read Username"),
        ("wrong-secret", "Authentication failed"),
    ],
)
async def test_clone_workspace_refused_without_valid_credentials(gitc, password, message):
    result = await gitc("clone", gitc.url(password=password), "c", check=False)
    assert result.code != 0 and message in result.err
    assert not (gitc.tmp / "c" / "workspace.md").exists()


@pytest.mark.parametrize(
    "role, can_clone, can_push",
    [
        ("member", True, True),
        ("viewer", True, False),
        (None, False, False),  # not a member: the workspace does not exist for them
    ],
)
async def test_git_access_with_api_token_follows_role(gitc, server, role, can_clone, can_push):
    _, headers = add_member(server.app, "default", role, f"user-{role}")
    token = headers["x-floom-token"]
    result = await gitc("clone", "-q", gitc.url(password=token), "c", check=False)
    if not can_clone:
        assert result.code != 0 and "not found" in result.err
        return
    assert result.code == 0, result.err
    repo = gitc.tmp / "c"
    sha = await gitc.commit(repo, {"workspace.md": f"# by {role}\n"})
    pushed = await gitc("push", "origin", "main", cwd=repo, check=False)
    if can_push:
        assert pushed.code == 0, pushed.err
        assert gitc.server_main() == sha
    else:
        assert pushed.code != 0 and "403" in pushed.err
        assert gitc.server_main() != sha


@pytest.mark.parametrize("headers", [{}, basic("wrong")], ids=["missing", "wrong"])
async def test_info_refs_answers_401_with_basic_challenge(server, headers):
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"http://127.0.0.1:{server.port}/git/default.git/info/refs",
            params={"service": "git-upload-pack"},
            headers=headers,
        ) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="floom-git"'
        assert "detail" in await resp.json()


@pytest.mark.parametrize(
    "name", ["nope", "nope.git", ".hidden", "a..b", "%2e%2e", "a%2Fb", "UPPER"]
)
async def test_info_refs_unknown_workspace_is_404(server, name):
    url = f"http://127.0.0.1:{server.port}/git/{name}.git/info/refs?service=git-upload-pack"
    async with aiohttp.ClientSession() as s, s.get(url, headers=basic(SECRET)) as resp:
        assert resp.status == 404
        assert await resp.json() == {"detail": "Repository not found", "code": "not_found"}


async def test_clone_unknown_workspace_fails_with_not_found(gitc):
    result = await gitc("clone", gitc.url(ws="nope"), "c", check=False)
    assert result.code != 0 and "not found" in result.err


@pytest.mark.parametrize(
    "method, path, headers, status",
    [
        ("GET", "/git/default.git/info/refs", {}, 403),  # dumb HTTP (no service)
        ("GET", "/git/default.git/info/refs?service=git-foo", {}, 403),
        ("GET", "/git/default.git/HEAD", {}, 404),
        ("GET", "/git/default.git/objects/info/packs", {}, 404),
        ("POST", "/git/default.git/git-upload-pack", {"Content-Type": "application/json"}, 415),
        (
            "POST",
            "/git/default.git/git-receive-pack",
            {"Content-Type": "application/x-git-upload-pack-request"},
            415,
        ),
    ],
)
async def test_git_http_refuses_other_requests(server, method, path, headers, status):
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            f"http://127.0.0.1:{server.port}{path}",
            headers={**headers, **basic(SECRET)},
            data=b"0000" if method == "POST" else None,
        ) as resp,
    ):
        assert resp.status == status
        assert "detail" in await resp.json()



async def test_git_refusals_go_through_the_one_error_path(server):
    """401, 403, 404 and 415 of smart HTTP carry the same {"detail", "code"} body as the API."""
    base = f"http://127.0.0.1:{server.port}/git/default.git"
    upload = {"Content-Type": "application/json", **basic(SECRET)}
    cases = [("GET", "/info/refs?service=git-upload-pack", {}, 401, "unauthenticated"),
             ("GET", "/info/refs", basic(SECRET), 403, "forbidden"),
             ("POST", "/git-upload-pack", upload, 415, "unsupported_media_type")]
    async with aiohttp.ClientSession() as s:
        for method, path, headers, status, code in cases:
            async with s.request(method, base + path, headers=headers, data=b"0000") as resp:
                assert resp.status == status
                body = await resp.json()
                assert body["code"] == code and set(body) == {"detail", "code"}, body
                if status == 401:
                    assert resp.headers["WWW-Authenticate"] == 'Basic realm="floom-git"'


async def test_openapi_documents_git_routes(server):
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{server.port}/openapi.json") as resp,
    ):
        spec = await resp.json()
    for path in (
        "/git/{ws}.git/info/refs",
        "/git/{ws}/git-upload-pack",
        "/git/{ws}.git/git-receive-pack",
    ):
        assert path in spec["paths"], path
    assert "/api/git/{ws}.git/info/refs" not in spec["paths"]


# -- fetch ------------------------------------------------------------------------------------


async def test_fetch_workspace_with_protocol_v2(gitc, server):
    repo = await gitc.clone()
    ws = server.app[MANAGER].get("default")
    await ws.writer.write(
        lambda r: Changeset({"workspace.md": b"# v2\n"}, "api write"),
        signature("api", "api@example.com"),
    )
    result = await gitc(
        "-c", "protocol.version=2", "fetch", "origin", cwd=repo, env={"GIT_TRACE_PACKET": "1"}
    )
    assert "fetch< version 2" in result.err  # the server answered in protocol v2
    assert "fetch> command=fetch" in result.err
    assert (await gitc("rev-parse", "origin/main", cwd=repo)).out.strip() == gitc.server_main()


async def test_clone_with_gzip_encoded_fetch_request(gitc):
    for i in range(60):  # enough wanted refs that git gzips the request body (> 1 KiB)
        git(gitc.ws_path, "tag", f"release-{i:03d}-with-a-longish-name", "main")
    result = await gitc(
        "clone", gitc.url(), "c", env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}
    )
    assert "Content-Encoding: gzip" in result.err
    tags = (await gitc("tag", cwd=gitc.tmp / "c")).out.split()
    assert len(tags) == 60


async def test_upload_pack_accepts_gzip_body_once_decoded(server, gitc):
    sha = gitc.server_main()

    def pkt(line: str) -> bytes:
        return f"{len(line) + 4:04x}{line}".encode()

    body = pkt(f"want {sha} ofs-delta\n") + b"0000" + pkt("done\n")
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"http://127.0.0.1:{server.port}/git/default/git-upload-pack",
            data=gzip.compress(body),
            headers={
                "Content-Type": "application/x-git-upload-pack-request",
                "Content-Encoding": "gzip",
                **basic(SECRET),
            },
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-git-upload-pack-result"
        data = await resp.read()
    assert data.startswith(b"0008NAK\n") and b"PACK" in data


async def test_fetch_floom_runs_branch(gitc, server):
    repo = await gitc.clone()
    ws = server.app[MANAGER].get("default")
    record = b'{"id": "run_abc", "status": "completed"}\n'
    await ws.writer.write(
        lambda r: Changeset({"runs/2026-01-01/run_abc/run.json": record}, "run: run_abc completed"),
        signature("floom", "floom@floom.local"),
        ref=RUNS,
        check_worktree=False,
    )
    await gitc("fetch", "-q", "origin", "floom/runs", cwd=repo)
    shown = await gitc("show", "FETCH_HEAD:runs/2026-01-01/run_abc/run.json", cwd=repo)
    assert shown.out.encode() == record
    assert not (ws.path / "runs").exists()  # the run branch never touches the working tree


# -- push -------------------------------------------------------------------------------------


async def test_push_worker_edit_is_live_when_push_returns(gitc, server):
    ws = server.app[MANAGER].get("default")
    seen = ws.events.last_seq
    repo = await gitc.clone()
    before = gitc.server_main()
    yml = (
        (repo / "workers/word-count/worker.yml")
        .read_text()
        .replace("title: Word count", "title: Counted by push")
    )
    sha = await gitc.commit(
        repo,
        {
            "workers/word-count/worker.yml": yml,
            "workers/new-worker/worker.yml": manifest("new-worker", "Brand new"),
            "workers/new-worker/run.py": "print('new')\n",
            "workers/research-brief": None,
        },
        "worker: edit by push",
    )
    await gitc("push", "-q", "origin", "main", cwd=repo)

    assert gitc.server_main() == sha
    async with aiohttp.ClientSession(headers=AUTH) as s:
        base = f"http://127.0.0.1:{server.port}"
        async with s.get(f"{base}/workers/word-count") as resp:
            assert (await resp.json())["name"] == "Counted by push"
        async with s.get(f"{base}/workers/new-worker") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ready"
        async with s.get(f"{base}/workers/research-brief") as resp:
            assert resp.status == 404
    assert git(ws.path, "status", "--porcelain") == ""
    assert (ws.path / "workers/word-count/worker.yml").read_text() == yml
    assert not (ws.path / "workers/research-brief").exists()
    events, _ = ws.events.since(seen)
    push = [e for e in events if e.type == "push"]
    assert len(push) == 1
    assert push[0].data["sha"] == sha and push[0].data["before"] == before
    assert push[0].data["workers"] == ["new-worker", "research-brief", "word-count"]


async def test_push_other_branch_and_tag_leave_worktree_alone(gitc, server):
    repo = await gitc.clone()
    sha = await gitc.commit(repo, {"notes/idea.md": "# idea\n"})
    await gitc("tag", "v1", cwd=repo)
    await gitc("push", "-q", "origin", "HEAD:refs/heads/feature", "v1", cwd=repo)
    ws = server.app[MANAGER].get("default")
    assert git(ws.path, "rev-parse", "feature").strip() == sha
    assert git(ws.path, "rev-parse", "v1^{commit}").strip() == sha
    assert not (ws.path / "notes").exists()
    assert git(ws.path, "status", "--porcelain") == ""


REFUSALS = {
    "invalid-manifest": (
        {
            "workers/word-count/worker.yml": manifest(
                "word-count", extra="triggers:\n  - type: cronn\n"
            )
        },
        "main",
        "workers/word-count/worker.yml: Invalid enum value 'cronn' (allowed: composio, cron, "
        "manual, schedule, scheduled, webhook) - at "
        "`$.triggers[0].type`",
    ),
    "folder-not-name": (
        {"workers/renamed/worker.yml": manifest("word-count"), "workers/renamed/run.py": "x\n"},
        "main",
        "workers/renamed/worker.yml: name 'word-count' must equal its folder name 'renamed'",
    ),
    "bad-issue": (
        {".floom/issues/ISSUE-0007.md": "---\nid: ISSUE-7\ntitle: x\n---\n"},
        "main",
        ".floom/issues/ISSUE-0007.md: `id` must look like ISSUE-0001",
    ),
    "dotenv": (
        {"workers/word-count/.env": "API_KEY=sk-123\n"},
        "main",
        "workers/word-count/.env: secret-bearing files",
    ),
    "oversize": (
        {"contexts/company/huge.bin": b"\0" * (MAX_FILE + 1)},
        "main",
        f"contexts/company/huge.bin: {MAX_FILE + 1} bytes is over the {MAX_FILE}-byte",
    ),
    "floom-runs": (
        {"notes.md": "x\n"},
        "HEAD:refs/heads/floom/runs",
        "refs/heads/floom/runs: branch is owned by the server",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_push_refused_with_remote_message(gitc, server, case):
    files, refspec, message = REFUSALS[case]
    repo = await gitc.clone()
    before = git(gitc.ws_path, "for-each-ref").strip()
    await gitc.commit(repo, files)
    result = await gitc("push", "origin", refspec, cwd=repo, check=False)
    assert result.code != 0
    assert "remote: push rejected" in result.err
    assert f"remote:   - {message}" in result.err
    assert "[remote rejected]" in result.err and "(pre-receive hook declined)" in result.err
    assert git(gitc.ws_path, "for-each-ref").strip() == before  # no ref moved
    assert git(gitc.ws_path, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    "refspec, message",
    [
        ("+HEAD~1:main", "refs/heads/main: non-fast-forward update (force push) is not allowed"),
        (":main", "refs/heads/main: deleting main is not allowed"),
    ],
)
async def test_push_refused_rewriting_main(gitc, server, refspec, message):
    ws = server.app[MANAGER].get("default")
    await ws.writer.write(
        lambda r: Changeset({"workspace.md": b"# two\n"}, "second"),
        signature("api", "api@example.com"),
    )
    repo = await gitc.clone()
    before = gitc.server_main()
    result = await gitc("push", "origin", refspec, cwd=repo, check=False)
    assert result.code != 0 and f"remote:   - {message}" in result.err
    assert gitc.server_main() == before


async def test_push_refused_over_unsynced_on_disk_edit(gitc, server):
    ws = server.app[MANAGER].get("default")
    repo = await gitc.clone()
    on_disk = "print('edited on the server')\n"
    (ws.path / "workers/word-count/run.py").write_text(on_disk)
    await gitc.commit(repo, {"workers/word-count/run.py": "print('pushed')\n"})
    result = await gitc("push", "origin", "main", cwd=repo, check=False)
    assert result.code != 0
    assert (
        "remote:   - workers/word-count/run.py: has uncommitted on-disk edits on the server"
        in result.err
    )
    assert (ws.path / "workers/word-count/run.py").read_text() == on_disk

    await gitc("reset", "-q", "--hard", "origin/main", cwd=repo)
    sha = await gitc.commit(repo, {"workspace.md": "# elsewhere\n"})
    await gitc("push", "-q", "origin", "main", cwd=repo)  # other files: accepted
    assert gitc.server_main() == sha
    assert (ws.path / "workers/word-count/run.py").read_text() == on_disk
    assert git(ws.path, "status", "--porcelain").split() == ["M", "workers/word-count/run.py"]


async def test_receive_pack_client_disconnect_mid_upload_leaves_nothing(server, gitc):
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /git/default.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-git-receive-pack-request\r\n"
        + f"Authorization: {basic(SECRET)['Authorization']}\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n4\r\n0094\r\n"
    )
    await writer.drain()
    ws = server.app[MANAGER].get("default")
    pushes = server.app[TRANSPORT].pushes
    objects = ws.path / ".git" / "objects"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not pushes:  # the upload is streaming into receive-pack
        assert loop.time() < deadline, "the upload was never received"
        await asyncio.sleep(0.02)
    assert not ws.writer._lock.locked()  # receiving a pack holds no lock
    writer.close()
    # Half a request is dropped, never acted on: git is stopped and removes its quarantine.
    while pushes or list(objects.glob("*incoming-*")):
        assert loop.time() < deadline, "the dropped upload left something behind"
        await asyncio.sleep(0.02)
    result = await asyncio.wait_for(
        ws.writer.write(
            lambda r: Changeset({"workspace.md": b"# after\n"}, "after"),
            signature("api", "api@example.com"),
        ),
        DEADLINE,
    )
    assert result.sha is not None
    assert git(ws.path, "status", "--porcelain") == ""


# -- pushes racing API writes -------------------------------------------------------------------


async def test_push_and_api_writes_race_lose_nothing(gitc, server):
    base = f"http://127.0.0.1:{server.port}"
    acked: list[str] = []
    accepted: list[str] = []
    told: list[str] = []
    reasons = (
        "fetch first",
        "non-fast-forward",
        "changed on the server while you pushed",
        "failed to update ref",
        "cannot lock ref",
    )

    async def api_writer(session: aiohttp.ClientSession, n: int) -> None:
        for i in range(n):
            async with session.put(
                f"{base}/contexts/company/files/race/api-{i}.md",
                data=f"api write {i}\n".encode(),
                headers={"Content-Type": "text/markdown"},
            ) as resp:
                assert resp.status == 200, await resp.text()
                acked.append((await resp.json())["sha"])

    async def pusher(k: int, pushes: int) -> None:
        repo = await gitc.clone(f"pusher-{k}")
        for j in range(pushes):
            await gitc.commit(repo, {f"race/push-{k}-{j}.md": f"push {k}.{j}\n"})
            for _attempt in range(30):
                result = await gitc("push", "origin", "main", cwd=repo, check=False)
                if result.code == 0:
                    accepted.append((await gitc("rev-parse", "HEAD", cwd=repo)).out.strip())
                    break
                assert "rejected" in result.err and any(r in result.err for r in reasons), (
                    result.err
                )
                told.append(result.err)
                await gitc("pull", "-q", "--rebase", "origin", "main", cwd=repo)
            else:
                raise AssertionError(f"pusher {k} never got push {j} in")

    async with aiohttp.ClientSession(headers=AUTH) as session:
        await asyncio.gather(api_writer(session, 12), pusher(0, 3), pusher(1, 3), pusher(2, 2))

    ws_path = gitc.ws_path
    assert len(acked) == 12 and len(accepted) == 8
    for sha in acked + accepted:  # every acknowledged write and accepted push is in history
        await gitc("-C", str(ws_path), "merge-base", "--is-ancestor", sha, "main")
    tree = git(ws_path, "ls-tree", "-r", "--name-only", "main").split()
    assert {f"contexts/company/race/api-{i}.md" for i in range(12)} <= set(tree)
    assert {f"race/push-{k}-{j}.md" for k, n in ((0, 3), (1, 3), (2, 2)) for j in range(n)} <= set(
        tree
    )
    assert git(ws_path, "status", "--porcelain") == ""
    fsck = await gitc("-C", str(ws_path), "fsck", "--strict", check=False)
    assert fsck.code == 0, fsck.err

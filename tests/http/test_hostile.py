"""The hostile-input catalog: requests built byte for byte (never normalised by a client library)
against the real server on a port, and pushes by the real git client. Each case must answer 4xx
with a `detail` naming what is wrong (where the server, not aiohttp's parser, answers), add no
commit to any branch of any workspace, and leave every working tree and the data dir unchanged."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import http.client
import io
import json
import os
import socket
import stat
import subprocess
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from floom_git.config import Settings
from floom_git.http.keys import IDENTITY, MANAGER
from tests.conftest import WORKER_YML
from tests.http.test_fuzz import LiveServer
from tests.http.test_runs import RESULT_OK, wait_run, yml

SECRET = "hostile-secret-0123456789"
MAX_JSON = 64 * 1024
MAX_FILE = 256 * 1024
MAX_UPLOAD = 512 * 1024
DEADLINE = 20.0
HOOKED_YML = yml("hooked", extra="triggers:\n  - type: webhook\n")


# -- transport: bytes on a socket, so paths and headers arrive exactly as written ---------------
@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def detail(self) -> str | None:
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return None
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value.get("detail") if isinstance(value, dict) else None


def send(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[str, str | bytes]] | None = None,
) -> Reply:
    lines = [
        f"{method} {path} HTTP/1.1".encode("utf-8", "surrogateescape"),
        b"Host: 127.0.0.1",
        b"Connection: close",
    ]
    names = {k.lower() for k, _ in headers or []}
    framed = "content-length" in names or "transfer-encoding" in names
    if (body or method in ("POST", "PUT", "PATCH")) and not framed:
        lines.append(b"Content-Length: %d" % len(body))
    for key, value in headers or []:
        lines.append(key.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading everything (413): read that answer
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return Reply(resp.status, resp.headers, resp.read())


# -- what must not change ----------------------------------------------------------------------
SKIP_DIRS = {"data/system", "data/spool", "data/envs"}  # the server's private, changing state
SKIP_GIT_DIRS = {"objects", "logs"}  # unreachable objects are harmless; refs are compared
SKIP_FILES = {"index", "FETCH_HEAD", "ORIG_HEAD"}


def snapshot(root: Path) -> dict[str, str]:
    """Refs and `git status` of every workspace, and a hash of every file under `root` (the
    server's whole temp dir, so an escape from the data dir shows) except git's object store,
    its index (refreshed by `git status`) and the server's private state."""
    state: dict[str, str] = {}
    workspaces = root / "data" / "workspaces"
    for ws in sorted(p for p in workspaces.iterdir() if (p / ".git").exists()):
        state[f"refs:{ws.name}"] = _git(ws, "for-each-ref", "--format=%(refname) %(objectname)")
        state[f"status:{ws.name}"] = _git(ws, "status", "--porcelain", "-uall", "--ignored")
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if str((here / d).relative_to(root)) not in SKIP_DIRS
            and not (here.name == ".git" and d in SKIP_GIT_DIRS)
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name in SKIP_FILES or name.endswith(".lock"):
                continue
            info = path.lstat()
            digest = (
                os.readlink(path)
                if stat.S_ISLNK(info.st_mode)
                else hashlib.sha256(path.read_bytes()).hexdigest()
            )
            state[str(path.relative_to(root))] = f"{oct(info.st_mode)} {digest}"
    return state


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def assert_unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a refused request changed: {changed}"


# -- the server and what exists before any hostile request ------------------------------------
@dataclass
class World:
    server: LiveServer
    root: Path
    creds: dict[str, str]  # placeholder -> value, e.g. {expired} -> a token that has expired

    @property
    def port(self) -> int:
        return int(self.server.url.rsplit(":", 1)[1])

    def call(self, method: str, path: str, body: object = None, status: int = 200) -> dict:
        raw = json.dumps(body).encode() if body is not None else b""
        reply = send(
            self.port,
            method,
            path,
            raw,
            [("x-floom-secret", SECRET), ("Content-Type", "application/json")],
        )
        assert reply.status == status, (path, reply.status, reply.body[:300])
        return json.loads(reply.body) if reply.body else {}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("hostile")
    live = LiveServer(
        Settings(
            data_dir=root / "data",
            secret=SECRET,
            shared_secret_role="admin",
            watch=False,
            scheduler=False,
            argon2_profile="CHEAPEST",
            rate_list_per_minute=0,
            rate_auth_per_minute=0,
            rate_login_per_minute=0,
            rate_auth_fail_per_minute=0,  # the catalog sends many wrong credentials on purpose
            webhook_rate_limit=100_000,
            max_json_bytes=MAX_JSON,
            max_file_bytes=MAX_FILE,
            max_upload_bytes=MAX_UPLOAD,
            max_archive_entries=50,
            import_max_entries=50,
            import_max_bytes=1024 * 1024,
        )
    )
    live.start()
    world = World(live, root, {})
    world.call(
        "POST",
        "/workers",
        {
            "worker_yml": WORKER_YML.format(name="hello-world", title="Hi"),
            "run_py": "print('hi')\n",
        },
        201,
    )
    world.call("POST", "/workers", {"worker_yml": HOOKED_YML, "run_py": RESULT_OK}, 201)
    old = world.call("POST", "/workers/hooked/webhook-secret/rotate")
    hook = world.call("POST", "/workers/hooked/webhook-secret/rotate")
    world.call("POST", "/contexts/notes", None, 201)
    world.call("PUT", "/contexts/notes/files/a.md", {"content": "# notes\n"})
    world.call("POST", "/workspace/issues", {"title": "first"}, 201)
    world.call("POST", "/workspaces", {"id": "elsewhere"}, 201)
    identity = live.app[IDENTITY]

    def user(name: str, ws: str, role: str) -> str:
        row = live.call(identity.users.create, name, email=f"{name}@example.com")
        live.call(identity.members.add, live.app[MANAGER].get(ws).uid, row.id, role)
        return row.id

    alice = user("alice", "default", "member")
    outsider = user("olga", "elsewhere", "owner")
    mint = identity.tokens.mint
    expired, _ = live.call(
        mint, user_id=alice, kind="personal", name="old", expires_at=time.time() - 60
    )
    revoked, row = live.call(mint, user_id=alice, kind="personal", name="gone")
    live.call(identity.tokens.revoke, row.id)
    foreign, _ = live.call(
        mint, user_id=outsider, kind="workspace", name="ci",
        workspace_id=live.app[MANAGER].get("elsewhere").uid, role="admin"
    )
    stranger, _ = live.call(mint, user_id=outsider, kind="personal", name="laptop")
    viewer_id = user("vic", "default", "viewer")
    viewer, _ = live.call(mint, user_id=viewer_id, kind="personal", name="v")
    digest = hashlib.sha256(hook["webhook_secret"].encode()).hexdigest()
    world.creds.update(
        expired=expired,
        revoked=revoked,
        foreign=foreign,
        stranger=stranger,
        viewer=viewer,
        hook_token=hook["webhook_token"],
        hook_old=old["webhook_token"],
        hook_sig_other="sha256="
        + hmac.new(digest.encode(), b'{"a": 1}', hashlib.sha256).hexdigest(),
    )
    yield world
    live.stop()


# -- building hostile bodies -------------------------------------------------------------------
def js(value: object) -> bytes:
    return json.dumps(value).encode()


def as_json(body: bytes) -> dict:
    return {"body": body, "headers": (("Content-Type", "application/json"),)}


def zipped(*entries: tuple) -> dict:
    """A raw application/zip import body; an entry is (name, data) or (name, data, st_mode)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, *mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode:
                info.external_attr = mode[0] << 16
            zf.writestr(info, data)
    return {"body": buf.getvalue(), "headers": (("Content-Type", "application/zip"),)}


def tar_with_hardlink() -> dict:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("workers/x/run.py")
        link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tf.addfile(link)
    return {"body": buf.getvalue(), "headers": (("Content-Type", "application/zip"),)}


def multipart(*parts: tuple[str, str | None, bytes]) -> dict:
    """(field name, filename or None, data) parts of a multipart/form-data body."""
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += b"--hostile\r\nContent-Disposition: " + disp.encode("utf-8", "surrogateescape")
        out += b"\r\n\r\n" + data + b"\r\n"
    return {
        "body": out + b"--hostile--\r\n",
        "headers": (("Content-Type", "multipart/form-data; boundary=hostile"),),
    }


def gzipped(data: bytes, ctype: str = "text/markdown") -> dict:
    return {
        "body": gzip.compress(data, 9),
        "headers": (("Content-Encoding", "gzip"), ("Content-Type", ctype)),
    }


def gzip_bomb(megabytes: int) -> dict:
    """`megabytes` MiB of zeros as a gzip body of about 1/1000 of that, built without holding
    the inflated bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    zeros = bytes(1 << 20)
    body = b"".join(deflate.compress(zeros) for _ in range(megabytes)) + deflate.flush()
    return {"body": body, "headers": (("Content-Encoding", "gzip"), ("Content-Type", "text/plain"))}


def basic(raw: bytes) -> tuple[tuple[str, bytes], ...]:
    return (("Authorization", b"Basic " + raw),)


def zip_bomb() -> dict:
    return zipped(("workspace.md", b"\0" * (900 * 1024)))


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
DEEP_YAML = "name: deep-one\nx: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_JSON = b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}"
UPLOAD = "/contexts/notes/upload"
GIT_REFS = "/git/default.git/info/refs?service=git-upload-pack"


@dataclass(frozen=True)
class Hostile:
    id: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str | bytes], ...] = ()
    status: int = 400
    detail: str | None = None  # a substring of `detail`; None: aiohttp's parser answers, in text
    auth: bool = True  # send the shared secret (admin)


def H(
    id: str,
    method: str,
    path: str,
    status: int = 400,
    detail: str | None = None,
    **kw: object,
) -> Hostile:
    return Hostile(id, method, path, status=status, detail=detail, **kw)  # type: ignore[arg-type]


# fmt: off
CASES = [
    # path traversal: context files (plain, encoded, double-encoded), names, ids, shas
    H("ctx-file-get-dotdot-plain", "GET", "/contexts/notes/files/../../../workspace.yml", 400,
      "'..' segment"),
    H("ctx-file-get-dotdot-encoded", "GET", "/contexts/notes/files/%2e%2e%2f%2e%2e%2fworkspace.yml",
      400, "'..' segment"),
    H("ctx-file-put-dotdot-encoded", "PUT", "/contexts/notes/files/..%2f..%2fworkers%2fx%2frun.py",
      400, "'..' segment", body=b"print(1)"),
    H("ctx-file-put-dotdot-double", "PUT", "/contexts/notes/files/%252e%252e%252fworkspace.md", 400,
      "encoded twice", body=b"pwned"),
    H("ctx-file-delete-dotdot-encoded", "DELETE",
      "/contexts/notes/files/%2e%2e/%2e%2e/workspace.md", 400, "'..' segment"),
    H("ctx-file-delete-dotdot-double", "DELETE", "/contexts/notes/files/%252e%252e/a.md", 400,
      "encoded twice"),
    H("ctx-file-put-absolute", "PUT", "/contexts/notes/files//etc/passwd", 400, "absolute",
      body=b"root::0:0"),
    H("ctx-file-put-absolute-encoded", "PUT", "/contexts/notes/files/%2fetc%2fpasswd", 400,
      "absolute", body=b"x"),
    H("ctx-file-put-windows-drive", "PUT", "/contexts/notes/files/C:%5cWindows%5cx", 400,
      "backslash", body=b"x"),
    H("ctx-file-put-dot-git", "PUT", "/contexts/notes/files/.git/config", 400, ".git", body=b"x"),
    H("ctx-file-put-dot-git-upper", "PUT", "/contexts/notes/files/sub/.GIT/hooks/pre-commit", 400,
      ".git", body=b"#!/bin/sh"),
    H("ctx-file-put-nul", "PUT", "/contexts/notes/files/a%00.md", 400, "NUL", body=b"x"),
    H("ctx-file-put-nul-double", "PUT", "/contexts/notes/files/a%2500.md", 400, "encoded twice",
      body=b"x"),
    H("ctx-name-dotdot-encoded", "POST", "/contexts/..%2f..%2fworkers", 400, "context name"),
    H("ctx-name-dotdot", "POST", "/contexts/%2e%2e", 400, "context name"),
    H("ctx-name-dot-git", "POST", "/contexts/.git", 400, "context name"),
    H("ctx-name-nul", "POST", "/contexts/a%00b", 400, "context name"),
    H("ctx-name-newline", "POST", "/contexts/notes%0A", 400, "context name"),
    H("worker-id-dotdot-encoded", "DELETE", "/workers/..%2f..%2fcontexts", 404, "not found"),
    H("worker-id-dotdot-double", "POST", "/workers/%252e%252e/pause", 404, "not found"),
    H("worker-files-path-dotdot", "PUT", "/workers/hello-world/files", 400, "'..' segment",
      **as_json(js({"files": [
          {"path": "worker.yml", "content": WORKER_YML.format(name="hello-world", title="x")},
          {"path": "../../workspace.md", "content": "x"}]}))),
    H("worker-files-path-absolute", "PUT", "/workers/hello-world/files", 400, "absolute",
      **as_json(js({"files": [{"path": "/etc/cron.d/x", "content": "x"}]}))),
    H("worker-files-dot-git-hook", "PUT", "/workers/hello-world/files", 400, ".git",
      **as_json(js({"files": [{"path": ".git/hooks/post-checkout", "content": "#!/bin/sh"}]}))),
    H("worker-files-nul-name", "PUT", "/workers/hello-world/files", 400, "NUL",
      **as_json(js({"files": [{"path": "run\u0000.py", "content": "x"}]}))),
    H("worker-create-nul-file-name", "POST", "/workers", 400, "NUL",
      **as_json(js({"worker_yml": WORKER_YML.format(name="nul-name", title="x"),
                    "files": [{"path": "a\u0000/run.py", "content": "x"}]}))),
    # a folder where the workspace reads a file (paths.expected_kind): never committed
    H("ctx-file-put-under-context-yml", "PUT", "/contexts/notes/files/context.yml/x.md", 400,
      "contexts/notes/context.yml: must be a file, not a folder", body=b"x"),
    H("worker-files-under-worker-yml", "PUT", "/workers/hello-world/files", 400,
      "workers/hello-world/worker.yml: must be a file, not a folder",
      **as_json(js({"files": [
          {"path": "worker.yml", "content": WORKER_YML.format(name="hello-world", title="x")},
          {"path": "run.py", "content": "x"}, {"path": "worker.yml/x.md", "content": "x"}]}))),
    H("worker-version-sha-dotdot", "GET", "/workers/hello-world/versions/..%2f..%2fHEAD", 404,
      "not found"),
    H("worker-rollback-sha-revspec", "POST", "/workers/hello-world/rollback/HEAD~1", 404,
      "not found"),
    H("worker-rollback-sha-range", "POST", "/workers/hello-world/rollback/main..HEAD", 404,
      "not found"),
    H("ctx-rollback-sha-dotdot", "POST", "/contexts/notes/rollback/%2e%2e", 404, "not found"),
    H("workspace-rollback-sha-refname", "POST", "/workspace/rollback/refs%2fheads%2fmain", 404,
      "not found"),
    H("issue-id-dotdot", "PATCH", "/workspace/issues/..%2f..%2fworkspace", 400, "issue id",
      **as_json(js({"title": "x"}))),
    H("issue-id-newline", "POST", "/workspace/issues/ISSUE-0001%0A/comments", 400, "issue id",
      **as_json(js({"body": "x"}))),
    H("issue-id-unicode-digits", "POST",
      "/workspace/issues/ISSUE-%D9%A1%D9%A2%D9%A3%D9%A4/comments", 400, "issue id",
      **as_json(js({"body": "x"}))),
    H("run-id-dotdot", "GET", "/runs/..%2f..%2fmain", 404, "not found"),
    H("run-id-artifact-dotdot", "GET", "/runs/run_0/artifacts/..%2f..%2fworkspace.yml/download",
      404, "not found"),
    H("run-feedback-dotdot", "POST", "/runs/%2e%2e/feedback", 404, "not found",
      **as_json(js({"content": "x"}))),
    H("approval-id-dotdot", "POST", "/approvals/..%2f..%2fsystem/approve", 404, "not found",
      **as_json(js({}))),
    H("alert-id-dotdot", "DELETE", "/workers/hooked/alerts/..%2f..%2fsecrets", 404, "not found"),
    H("token-id-dotdot", "DELETE", "/workspace/tokens/..%2f..%2fusers", 404, "not found"),
    H("member-id-dotdot", "DELETE", "/workspaces/default/members/..%2f..%2fowner", 404,
      "not found"),
    H("share-token-dotdot", "GET", "/s/..%2f..%2fsystem", 404, "not found", auth=False),
    H("public-worker-dotdot", "GET", "/workers/public/..%2fhello-world?token=x", 404, "not found",
      auth=False),
    H("magic-link-dotdot", "GET", "/auth/magic/..%2f..%2fsystem", 401, "magic link", auth=False),
    H("secret-name-dotdot", "POST", "/secrets/..%2f..%2fKEY", 400, "secret name",
      **as_json(js({"value": "x"}))),
    H("secret-name-newline", "POST", "/secrets/API_KEY%0A", 400, "secret name",
      **as_json(js({"value": "x"}))),
    H("workspace-id-dotdot", "PATCH", "/workspaces/..%2fsystem", 404, "workspace",
      **as_json(js({"name": "x"}))),
    H("workspace-id-newline", "POST", "/workspaces", 400, "workspace id",
      **as_json(js({"id": "team\n"}))),
    H("workspace-header-dotdot", "PUT", "/workspace", 404, "workspace", body=b"# pwned",
      headers=(("x-workeros-workspace", "../../system"),)),
    H("git-ws-dotdot-encoded", "GET", "/git/..%2fsystem.git/info/refs?service=git-upload-pack", 404,
      "not found", headers=basic(base64.b64encode(f"x:{SECRET}".encode()))),
    H("git-ws-dotdot-plain", "POST", "/git/default.git/../../system/git-receive-pack", 404,
      "not found", headers=basic(base64.b64encode(f"x:{SECRET}".encode()))),
    # uploads: zip import (zip-slip, absolute, links, special files, .git, bombs) and multipart
    H("import-zip-slip", "POST", "/workspace/import", 400, "'..' segment",
      **zipped(("../../../evil.txt", b"x"))),
    H("import-zip-slip-nested", "POST", "/workspace/import", 400, "'..' segment",
      **zipped(("workers/../../x/run.py", b"x"))),
    H("import-absolute", "POST", "/workspace/import", 400, "absolute",
      **zipped(("/etc/passwd", b"x"))),
    H("import-symlink", "POST", "/workspace/import", 400, "symbolic link",
      **zipped(("workers/x/run.py", b"/etc/passwd", stat.S_IFLNK | 0o777))),
    H("import-char-device", "POST", "/workspace/import", 400, "not a regular file",
      **zipped(("workers/x/run.py", b"", stat.S_IFCHR | 0o644))),
    H("import-fifo", "POST", "/workspace/import", 400, "not a regular file",
      **zipped(("contexts/c/pipe", b"", stat.S_IFIFO | 0o644))),
    H("import-tar-hardlink", "POST", "/workspace/import", 400, "not a zip", **tar_with_hardlink()),
    H("import-dot-git", "POST", "/workspace/import", 400, ".git",
      **zipped(("contexts/c/.git/config", b"[core]\n"))),
    H("import-zip-bomb-one-entry", "POST", "/workspace/import", 413, "larger than", **zip_bomb()),
    H("import-zip-bomb-declared", "POST", "/workspace/import", 413, "expands",
      **zipped(*[(f"contexts/c/f{i}", b"\0" * (300 * 1024)) for i in range(4)])),
    H("import-too-many-entries", "POST", "/workspace/import", 413, "entries",
      **zipped(*[(f"contexts/c/f{i}", b"x") for i in range(51)])),
    H("import-not-zip", "POST", "/workspace/import", 400, "not a zip", body=b"PK\x03\x04garbage",
      headers=(("Content-Type", "application/zip"),)),
    H("upload-filename-dotdot", "POST", UPLOAD, 400, "'..' segment",
      **multipart(("file", "../../workers/x/run.py", b"x"))),
    H("upload-filename-dotdot-encoded", "POST", UPLOAD, 400, "'..' segment",
      **multipart(("file", "%2e%2e%2f%2e%2e%2fworkspace.md", b"x"))),
    H("upload-filename-absolute-encoded", "POST", UPLOAD, 400, "absolute",
      **multipart(("file", "%2fetc%2fpasswd", b"x"))),
    H("upload-filename-dot-git", "POST", UPLOAD, 400, ".git",
      **multipart(("file", ".git/hooks/pre-commit", b"x"))),
    H("upload-prefix-dotdot", "POST", UPLOAD, 400, "'..' segment",
      **multipart(("path_prefix", None, b"../.."), ("file", "x.md", b"x"))),
    H("upload-under-context-yml", "POST", UPLOAD, 400,
      "contexts/notes/context.yml: must be a file, not a folder",
      **multipart(("file", "context.yml%2Fx.md", b"x"))),
    H("import-folder-at-context-yml", "POST", "/workspace/import", 400,
      "contexts/c/context.yml: must be a file, not a folder",
      **zipped(("contexts/c/context.yml/x.md", b"x"))),
    H("upload-filename-nul", "POST", UPLOAD, 400, "NUL", **multipart(("file", "a%00b.md", b"x"))),
    H("upload-malformed-part", "POST", UPLOAD, 400, "malformed",
      body=b"--hostile\r\n\xff\xfe no header\r\n--hostile--\r\n",
      headers=(("Content-Type", "multipart/form-data; boundary=hostile"),)),
    H("upload-too-large", "POST", UPLOAD, 413, "larger than",
      **multipart(("file", "big.bin", b"\0" * (MAX_UPLOAD + 1)))),
    # bombs and sizes: gzip bodies, YAML aliases and depth, deep JSON, huge lines
    H("gzip-bomb-workspace-md", "PUT", "/workspace", 413, "larger than",
      **gzipped(b"a" * (8 * 1024 * 1024))),
    H("gzip-bomb-200-mib", "PUT", "/workspace", 413, "larger than", **gzip_bomb(200)),
    H("gzip-bomb-json", "POST", "/workspace/issues", 413, "larger than",
      **gzipped(b'{"title": "' + b"a" * (4 * 1024 * 1024) + b'"}', "application/json")),
    H("gzip-truncated", "PUT", "/workspace", 400, "empty", body=b"\x1f\x8b\x08\x00garbage",
      headers=(("Content-Encoding", "gzip"), ("Content-Type", "text/markdown"))),
    H("yaml-alias-bomb", "POST", "/workers", 400, "aliases",
      **as_json(js({"worker_yml": ALIAS_BOMB + "name: bomb-one\n", "run_py": "x"}))),
    H("yaml-deeply-nested", "POST", "/workers", 400, "nested",
      **as_json(js({"worker_yml": DEEP_YAML, "run_py": "x"}))),
    H("json-deeply-nested", "POST", "/workspace/issues", 400, "request body", **as_json(DEEP_JSON)),
    H("json-body-over-limit", "POST", "/workspace/issues", 413, "larger than",
      **as_json(js({"title": "x", "body": "y" * MAX_JSON}))),
    H("content-length-lies-huge", "PUT", "/workspace", 413, "larger than", body=b"x",
      headers=(("Content-Length", "999999999999"),)),
    H("huge-single-line-title", "POST", "/workspace/issues", 400, "title",
      **as_json(js({"title": "t" * 50_000}))),
    H("huge-single-line-file", "PUT", "/contexts/notes/files/big.txt", 413, "larger",
      body=b"z" * (MAX_FILE + 1)),
    H("huge-request-line", "GET", "/workers?q=" + "a" * 20_000, 400, None),
    H("huge-header-value", "GET", "/workers", 400, None, headers=(("X-Big", "b" * 20_000),)),
    H("huge-cookie", "GET", "/workers", 400, None,
      headers=(("Cookie", "floom_session=" + "c" * 20_000),)),
    H("smuggling-cl-and-te", "PUT", "/workspace", 400, None, body=b"5\r\n# hi\n\r\n0\r\n\r\n",
      headers=(("Content-Length", "4"), ("Transfer-Encoding", "chunked"))),
    H("too-many-headers", "GET", "/workers", 400, None,
      headers=tuple((f"X-H{i}", "v" * 50) for i in range(300))),
    H("header-name-with-space", "GET", "/workers", 400, None, headers=(("Bad Header", "x"),)),
    H("method-unknown", "FOO", "/workers", 400, None),
    H("content-length-negative", "PUT", "/workspace", 400, None, body=b"",
      headers=(("Content-Length", "-1"),)),
    H("content-length-twice", "PUT", "/workspace", 400, None, body=b"hello!",
      headers=(("Content-Length", "5"), ("Content-Length", "6"))),
    H("chunk-size-not-hex", "PUT", "/workspace", 400, None, body=b"zz\r\nabc\r\n0\r\n\r\n",
      headers=(("Transfer-Encoding", "chunked"),)),
    # encodings: invalid UTF-8 and NUL
    H("workspace-md-invalid-utf8", "PUT", "/workspace", 400, "UTF-8", body=b"# hi \xff\xfe\n",
      headers=(("Content-Type", "text/markdown"),)),
    H("worker-yml-base64-invalid-utf8", "POST", "/workers", 400, "UTF-8",
      **as_json(js({"files": [{"path": "worker.yml", "encoding": "base64",
                               "content": base64.b64encode(b"name: \xff\xfe\n").decode()}]}))),
    H("json-invalid-utf8", "POST", "/workspace/issues", 400, "not valid UTF-8",
      **as_json(b'{"title": "\xff\xfe"}')),
    H("json-lone-surrogate", "POST", "/workspace/issues", 400, "malformed JSON",
      **as_json(b'{"title": "a\\ud800b"}')),
    H("ctx-file-bad-base64", "PUT", "/contexts/notes/files/b.bin", 400, "base64",
      **as_json(js({"content": "!!!not base64", "encoding": "base64"}))),
    # JSON shape: duplicate keys, unknown fields, wrong content types
    H("json-duplicate-key", "POST", "/workspace/issues", 400, "duplicate key",
      **as_json(b'{"title": "a", "title": "b"}')),
    H("json-duplicate-key-nested", "PUT", "/workers/hello-world/files", 400, "duplicate key",
      **as_json(b'{"files": [{"path": "a", "path": "b", "content": "x"}]}')),
    H("json-known-field-wrong-type", "PATCH", "/workers/hello-world/visibility", 400,
      "$.visibility", **as_json(js({"visibility": ["private"], "admin": True}))),
    H("ctype-form-on-json-route", "POST", "/workspace/issues", 415, "Content-Type", body=b"title=x",
      headers=(("Content-Type", "application/x-www-form-urlencoded"),)),
    H("ctype-xml-on-json-route", "POST", "/workers", 415, "Content-Type", body=b"<worker/>",
      headers=(("Content-Type", "application/xml"),)),
    H("ctype-text-on-json-route", "POST", "/workspace/issues", 415, "Content-Type",
      body=b'{"title": "x"}', headers=(("Content-Type", "text/plain"),)),
    H("ctype-text-on-optional-json", "POST", "/workers/hello-world/runs", 415, "Content-Type",
      body=b'{"inputs": {}}', headers=(("Content-Type", "text/plain"),)),
    H("ctx-file-path-not-utf8", "PUT", "/contexts/notes/files/%FF%FE.txt", 400, "UTF-8", body=b"x",
      headers=(("Content-Type", "text/plain"),)),
    H("ctx-file-ntfs-dot-git", "PUT", "/contexts/notes/files/GIT~1/config", 400, ".git", body=b"x",
      headers=(("Content-Type", "text/plain"),)),
    H("ctx-file-hfs-dot-git", "PUT", "/contexts/notes/files/.g%E2%80%8Cit/config", 400, ".git",
      body=b"x", headers=(("Content-Type", "text/plain"),)),
    H("ctype-json-on-upload", "POST", UPLOAD, 400, "multipart", **as_json(js({"file": "x"}))),
    H("ctype-text-on-import", "POST", "/workspace/import", 400, "Content-Type", body=b"x",
      headers=(("Content-Type", "text/plain"),)),
    H("ctype-multipart-without-boundary", "POST", UPLOAD, 400, "boundary", body=b"x",
      headers=(("Content-Type", "multipart/form-data"),)),
    # lists: limit/offset bounds, run cursors
    H("limit-negative", "GET", "/workers?limit=-1", 400, "limit"),
    H("limit-huge", "GET", "/workers?limit=99999999999999999999999999", 400, "limit"),
    H("limit-float", "GET", "/workspace/versions?limit=1e3", 400, "limit"),
    H("offset-negative", "GET", "/workspace/issues?offset=-5", 400, "offset"),
    H("offset-huge", "GET", "/runs?offset=10000000000000", 400, "offset"),
    H("limit-zero-versions", "GET", "/workers/hello-world/versions?limit=0", 400, "limit"),
    H("changelog-limit-zero", "GET", "/workspace/changelog?limit=0", 400, "limit"),
    H("cursor-not-a-date", "GET", "/runs?before_created_at=yesterday&before_id=run_1", 400,
      "before_created_at"),
    H("cursor-id-without-date", "GET", "/runs?before_id=run_1", 400, "before_id"),
    H("cursor-month-13", "GET", "/runs?before_created_at=2026-13-01T00:00:00Z&before_id=run_1", 400,
      "before_created_at"),
    H("cursor-nul", "GET", "/runs?before_created_at=2026-01-01%00", 400, "before_created_at"),
    # credentials: malformed Basic on git routes, bad bytes, expired/revoked/foreign tokens
    H("git-basic-not-base64", "GET", GIT_REFS, 401, "malformed Basic", headers=basic(b"!!!"),
      auth=False),
    H("git-basic-non-ascii", "GET", GIT_REFS, 401, "malformed Basic", headers=basic(b"\xff\xfe"),
      auth=False),
    H("git-basic-no-colon", "GET", GIT_REFS, 401, "credentials",
      headers=basic(base64.b64encode(SECRET.encode())), auth=False),
    H("git-basic-empty", "GET", GIT_REFS, 401, "credentials", headers=basic(b""), auth=False),
    H("git-basic-wrong-password", "GET", GIT_REFS, 401, "invalid credentials",
      headers=basic(base64.b64encode(b"x:nope")), auth=False),
    H("git-push-expired-token", "POST", "/git/default.git/git-receive-pack", 401, "expired",
      headers=(("Authorization", "basic:x:{expired}"),), auth=False),
    H("git-push-revoked-token", "POST", "/git/default.git/git-receive-pack", 401, "revoked",
      headers=(("Authorization", "basic:x:{revoked}"),), auth=False),
    H("git-foreign-token", "GET", GIT_REFS, 404, "not found",
      headers=(("Authorization", "basic:x:{foreign}"),), auth=False),
    H("git-viewer-token-push", "GET", "/git/default.git/info/refs?service=git-receive-pack", 403,
      "write access", headers=(("Authorization", "basic:x:{viewer}"),), auth=False),
    H("token-expired", "PUT", "/workspace", 401, "expired", body=b"# x",
      headers=(("x-floom-token", "{expired}"),), auth=False),
    H("token-revoked", "PUT", "/workspace", 401, "revoked", body=b"# x",
      headers=(("Authorization", "Bearer {revoked}"),), auth=False),
    H("token-foreign-workspace", "PUT", "/workspace", 403, "not a member", body=b"# x",
      headers=(("x-floom-token", "{foreign}"), ("x-workeros-workspace", "default")), auth=False),
    H("token-foreign-workspace-on-path", "POST", "/workspaces/default/members/invite", 403,
      "not a member", auth=False, body=js({"email": "evil@example.com", "role": "owner"}),
      headers=(("x-floom-token", "{foreign}"), ("Content-Type", "application/json"))),
    H("token-of-non-member", "PUT", "/workspace", 403, "not a member", body=b"# x",
      headers=(("x-floom-token", "{stranger}"),), auth=False),
    H("token-viewer-writes", "PUT", "/workspace", 403, "requires the member role", body=b"# x",
      headers=(("x-floom-token", "{viewer}"),), auth=False),
    H("token-non-utf8", "PUT", "/workspace", 401, "UTF-8", body=b"# x",
      headers=(("x-floom-token", b"floom_\xff\xfe"),), auth=False),
    H("secret-non-utf8", "PUT", "/workspace", 401, "UTF-8", body=b"# x",
      headers=(("x-floom-secret", b"\xff"),), auth=False),
    H("cookie-non-utf8", "PUT", "/workspace", 401, "UTF-8", body=b"# x",
      headers=(("Cookie", b"floom_session=\xff\xfe"),), auth=False),
    H("bearer-scheme-unknown", "PUT", "/workspace", 401, "scheme", body=b"# x",
      headers=(("Authorization", "Digest abc"),), auth=False),
    # webhooks: bad and replayed signatures or tokens
    H("webhook-no-credential", "POST", "/webhooks/hooked", 401, "token or signature", auth=False,
      **as_json(b"{}")),
    H("webhook-old-token-replayed", "POST", "/webhooks/hooked?token={hook_old}", 401,
      "token or signature", auth=False, **as_json(b"{}")),
    H("webhook-signature-other-body", "POST", "/webhooks/hooked", 401, "token or signature",
      auth=False, body=b'{"a": 2}',
      headers=(("Content-Type", "application/json"), ("X-Floom-Signature", "{hook_sig_other}"))),
    H("webhook-signature-garbage", "POST", "/webhooks/hooked", 401, "token or signature",
      auth=False, body=b"{}", headers=(("X-Floom-Signature", "sha256=zz"),)),
    H("webhook-signature-non-ascii", "POST", "/webhooks/hooked", 401, "token or signature",
      auth=False, body=b"{}", headers=(("X-Floom-Signature", b"sha256=\xff\xfe"),)),
    H("webhook-token-non-ascii", "POST", "/webhooks/hooked?token=%ff%fe", 401, "token or signature",
      auth=False, body=b"{}"),
    H("webhook-token-of-other-worker", "POST", "/webhooks/hello-world?token={hook_token}", 401,
      "token or signature", auth=False, body=b"{}"),
]
# fmt: on


def _fill(value: str | bytes, creds: dict[str, str]) -> str | bytes:
    """Credentials exist only once the server runs: put them into the header value now."""
    if isinstance(value, bytes):
        return value
    value = value.format(**creds)
    if value.startswith("basic:"):
        return "Basic " + base64.b64encode(value[len("basic:") :].encode()).decode()
    return value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_send_hostile_request_is_refused_and_changes_nothing(world: World, case: Hostile) -> None:
    before = snapshot(world.root)
    headers = [(k, _fill(v, world.creds)) for k, v in case.headers]
    if case.auth:
        headers.insert(0, ("x-floom-secret", SECRET))
    reply = send(world.port, case.method, case.path.format(**world.creds), case.body, headers)
    shown = f"{case.method} {case.path[:80]} -> {reply.status} {reply.body[:300]!r}"
    assert reply.status == case.status, shown
    if case.detail is None:  # refused by aiohttp's HTTP parser before any handler ran
        assert reply.headers.get("Content-Type", "").startswith("text/plain"), shown
    else:
        assert reply.detail and case.detail.lower() in reply.detail.lower(), shown
    assert_unchanged(before, snapshot(world.root))


def test_snapshot_sees_a_commit_and_a_file_outside_the_data_dir(world: World) -> None:
    """The harness itself: an accepted write and an escaped file both show as changes."""
    before = snapshot(world.root)
    world.call("PUT", "/contexts/notes/files/harness.md", {"content": "seen\n"})
    after = snapshot(world.root)
    assert after["refs:default"] != before["refs:default"]
    assert "data/workspaces/default/contexts/notes/harness.md" in set(after) - set(before)
    (world.root / "escaped.txt").write_text("x")
    try:
        assert "escaped.txt" in set(snapshot(world.root)) - set(after)
    finally:
        (world.root / "escaped.txt").unlink()


def test_list_hostile_catalog_has_at_least_60_distinct_4xx_cases() -> None:
    assert len(CASES) + len(PUSHES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(400 <= c.status < 500 for c in CASES)


# -- pushed trees: the real git client against /git/default.git --------------------------------
def git_env(home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Mallory",
        "GIT_AUTHOR_EMAIL": "m@example.com",
        "GIT_COMMITTER_NAME": "Mallory",
        "GIT_COMMITTER_EMAIL": "m@example.com",
    }


class Clone:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path, self.env = path, env

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"git {args}: {proc.stderr}"
        return proc.stdout.strip() + proc.stderr

    def commit_tree_with(self, entry: str, message: str) -> None:
        """Commit HEAD's tree plus one raw `git mktree` line: trees a normal `git add` refuses."""
        listing = self("ls-tree", "HEAD").strip()
        tree = self("mktree", stdin=f"{listing}\n{entry}\n").strip()
        commit = self("commit-tree", tree, "-p", "HEAD", "-m", message).strip()
        self("update-ref", "refs/heads/main", commit)


def _symlink(c: Clone) -> None:
    os.symlink("/etc/passwd", c.path / "workers/hello-world/passwd")
    c("add", "workers/hello-world/passwd")
    c("commit", "-qm", "link")


def _gitlink(c: Clone) -> None:
    c(
        "update-index",
        "--add",
        "--cacheinfo",
        f"160000,{c('rev-parse', 'HEAD').strip()},workers/hello-world/sub",
    )
    c("commit", "-qm", "submodule")


def _dot_git_tree(c: Clone) -> None:
    blob = c("hash-object", "-w", "--stdin", stdin="[core]\n\thooksPath = /tmp\n").strip()
    inner = c("mktree", stdin=f"100644 blob {blob}\tconfig\n").strip()
    c.commit_tree_with(f"040000 tree {inner}\t.GIT", "dot git")


def _dotdot_tree(c: Clone) -> None:
    blob = c("hash-object", "-w", "--stdin", stdin="x\n").strip()
    c.commit_tree_with(f"100644 blob {blob}\t..", "dot dot")


def _tag_of_secret_tree(c: Clone) -> None:
    blob = c("hash-object", "-w", "--stdin", stdin="TOKEN=abc\n").strip()
    tree = c("mktree", stdin=f"100644 blob {blob}\t.env\n").strip()
    c("tag", "-a", "-m", "not a commit", "sneaky", tree)


def _secret_file(c: Clone) -> None:
    (c.path / "workers/hello-world/.env").write_text("TOKEN=abc\n")
    c("add", "-f", "workers/hello-world/.env")
    c("commit", "-qm", "env")


def _bad_manifest(c: Clone) -> None:
    (c.path / "workers/hello-world/worker.yml").write_text("name: [unclosed\n")
    c("commit", "-qam", "break")


def _file_for_worker_folder(c: Clone) -> None:
    c("rm", "-q", "-r", "workers/hello-world")
    (c.path / "workers/hello-world").write_text("not a folder\n")
    c("add", "workers/hello-world")
    c("commit", "-qm", "file for a worker")


def _force(c: Clone) -> None:
    c("reset", "-q", "--hard", "HEAD~1")
    c("commit", "-q", "--allow-empty", "-m", "rewrite")


# fmt: off
PUSHES = [
    ("symlink-in-worker", _symlink, ("main",), "symbolic links are not supported"),
    ("gitlink-in-worker", _gitlink, ("main",), "submodules are not supported"),
    ("dot-git-tree", _dot_git_tree, ("main",), "hasDotgit"),
    ("dot-dot-tree-entry", _dotdot_tree, ("main",), "hasDotdot"),
    ("secret-file", _secret_file, ("main",), "secret-bearing"),
    ("tag-of-secret-tree", _tag_of_secret_tree, ("refs/tags/sneaky",), "not a commit"),
    ("invalid-manifest", _bad_manifest, ("main",), "worker.yml"),
    ("file-for-worker-folder", _file_for_worker_folder, ("main",),
     "workers/hello-world: must be a folder, not a file"),
    ("force-push-main", _force, ("--force", "HEAD:main"), "non-fast-forward"),
    ("delete-main", lambda c: None, (":main",), "deleting main"),
    ("server-owned-branch", lambda c: c("commit", "-q", "--allow-empty", "-m", "x"),
     ("HEAD:refs/heads/floom/runs",), "owned by the server"),
    ("revoked-token", lambda c: c("commit", "-q", "--allow-empty", "-m", "x"),
     ("REVOKED", "main"), "Authentication failed"),
]
# fmt: on


@pytest.mark.parametrize(
    "make, refspec, message", [p[1:] for p in PUSHES], ids=[p[0] for p in PUSHES]
)
def test_push_hostile_tree_is_refused_and_changes_nothing(
    world: World, tmp_path: Path, make, refspec, message
) -> None:
    url = f"http://x:{SECRET}@127.0.0.1:{world.port}/git/default.git"
    env = git_env(tmp_path / "home")
    subprocess.run(
        ["git", "clone", "-q", url, str(tmp_path / "c")], env=env, check=True, capture_output=True
    )
    clone = Clone(tmp_path / "c", env)
    make(clone)
    if refspec[0] == "REVOKED":
        url = url.replace(SECRET, world.creds["revoked"])
        refspec = refspec[1:]
    before = snapshot(world.root)
    out = clone("push", url, *refspec, check=False)
    assert "rejected" in out or "Authentication failed" in out or "error:" in out, out
    assert message in out, out
    assert_unchanged(before, snapshot(world.root))


# -- a replayed webhook delivery ---------------------------------------------------------------
async def test_replay_webhook_delivery_starts_no_second_run(client, settings: Settings) -> None:
    resp = await client.post("/api/workers", json={"worker_yml": HOOKED_YML, "run_py": RESULT_OK})
    assert resp.status == 201, await resp.text()
    hook = await (await client.post("/api/workers/hooked/webhook-secret/rotate")).json()
    digest = hashlib.sha256(hook["webhook_secret"].encode()).hexdigest()
    body = b'{"email": "lead@acme.com"}'
    delivery = {
        "X-Floom-Signature": "sha256="
        + hmac.new(digest.encode(), body, hashlib.sha256).hexdigest(),
        "X-Request-ID": "delivery-1",
        "Content-Type": "application/json",
    }
    url = client.make_url("/api/webhooks/hooked")
    async with aiohttp.ClientSession() as anon:
        first = await (await anon.post(url, data=body, headers=delivery)).json()
        run = await wait_run(client, first["run_id"])
        assert run["status"] == "completed", run
        ws = settings.workspaces_dir / "default"
        record = f"floom/runs:runs/{run['created_at'][:10]}/{run['id']}/run.json"
        await _until(lambda: '"completed"' in _git_show(ws, record), "the run record is committed")
        before = snapshot(settings.data_dir.parent)
        resp = await anon.post(url, data=body, headers=delivery)
        replay = await resp.json()
    assert resp.status == 200 and replay == {**replay, "run_id": first["run_id"], "deduped": True}
    listed = await (await client.get("/api/runs?worker_id=hooked")).json()
    assert [r["id"] for r in listed] == [first["run_id"]]
    assert_unchanged(before, snapshot(settings.data_dir.parent))


def _git_show(repo: Path, spec: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", spec], capture_output=True, text=True, check=False
    )
    return proc.stdout


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < end, f"never happened: {what}"
        await asyncio.sleep(0.05)

"""The hostile-worker catalog: each case is a real worker created and run through the real API,
attacking the server from inside its run. Each asserts what the worker saw (the attack failed),
what the host shows afterwards (nothing changed, nothing left running) and that the server still
answers. A few controls run the same attack with FLOOM_SANDBOX=none to prove it is a real one."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pytest

from floom_git.http.keys import MANAGER, SECRETS
from floom_git.runtime.process import descendants
from tests.conftest import git, uid
from tests.http.test_runs import committed, make_worker, processes_with, trigger, wait_for, wait_run

SECRET_NAME = "API_KEY"
SECRET_VALUE = "sk-live/Secret+Value=42&more?"  # URL and base64 encodings all differ from it
ENCODINGS = {
    "plain": lambda s: s,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "hex": lambda s: s.encode().hex(),
    "url": lambda s: urllib.parse.quote(s, safe=""),
}
ENCODE_IN_WORKER = {
    "plain": "s",
    "base64": "base64.b64encode(s.encode()).decode()",
    "base64url": "base64.urlsafe_b64encode(s.encode()).decode()",
    "hex": "s.encode().hex()",
    "url": "urllib.parse.quote(s, safe='')",
}
# Every variable a run may see (executor._run_spec) plus the declared secret.
ALLOWED_ENV = {
    "HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "TZ",
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONNOUSERSITE",
    "FLOOM_RUN_ID",
    "FLOOM_WORKER_ID",
    "FLOOM_TRACE_ID",
    "FLOOM_WORKSPACE_ID",
    "VIRTUAL_ENV",
    SECRET_NAME,
    "PWD",
    "SHLVL",
    "_",
}

PRELUDE = """import base64, errno, json, os, socket, subprocess, sys, time, urllib.parse
inputs = json.load(open("inputs.json"))
data = inputs.get("data_dir", "")


def attempt(fn):
    try:
        value = fn()
    except BaseException as exc:
        return {"ok": False, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}
    shown = value if isinstance(value, (str, int, list, type(None))) else repr(value)
    return {"ok": True, "value": shown}


def report(**outputs):
    json.dump({"status": "success", "outputs": outputs}, open("result.json", "w"))


def read(path):
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


def write(path, text="pwned"):
    with open(path, "a") as fh:
        fh.write(text)
    return path
"""


@pytest.fixture
def settings(settings):
    return settings.replace(run_max_processes=64, run_file_size_mb=1, run_scratch_mb=16,
                            run_kill_grace_seconds=1.0)


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(data: Path) -> dict[str, str]:
    """What no run may change: the server's private files, the other workspace (files and refs),
    the default workspace's main branch and working tree."""
    state: dict[str, str] = {}
    for path in sorted((data / "system").rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
            state[str(path.relative_to(data))] = _hash(path)
    for ws in ("other", "default"):
        root = data / "workspaces" / ws
        for path in sorted(root.rglob("*")):
            if ".git" not in path.relative_to(root).parts and path.is_file():
                state[str(path.relative_to(data))] = _hash(path)
        state[f"main:{ws}"] = git(root, "rev-parse", "main")
    state["refs:other"] = git(data / "workspaces" / "other", "for-each-ref")
    return state


@pytest.fixture
async def host(client, settings):
    """The server with a second workspace and a secret the attackers declare."""
    app = client.server.app
    await app[MANAGER].create("other")
    app[SECRETS].set(uid(app, "default"), SECRET_NAME, SECRET_VALUE, "test")
    return {"client": client, "data": settings.data_dir, "port": client.server.port}


async def hostile_worker(host: dict, name: str, run_py: str, **kw) -> None:
    """Create the worker, then take the fingerprint its runs must leave as it is."""
    await make_worker(host["client"], name, run_py, **kw)
    host["before"] = fingerprint(host["data"])


async def unharmed(host: dict) -> None:
    client = host["client"]
    assert (await client.get("/healthz")).status == 200
    assert fingerprint(host["data"]) == host["before"]
    resp = await client.get("/api/workers")
    assert resp.status == 200


async def attack(host: dict, name: str, body: str, *, extra: str = "", inputs: dict | None = None,
                 status: str = "completed") -> dict:
    """Create worker `name` running PRELUDE + body, run it with the host's facts as inputs and
    return the finished run (asserting its status)."""
    await hostile_worker(host, name, PRELUDE + body, secrets=[SECRET_NAME], extra=extra)
    facts = {"data_dir": str(host["data"]), "port": host["port"], "server_pid": os.getpid(),
             **(inputs or {})}
    run = await wait_run(host["client"], (await trigger(host["client"], name, facts))["run_id"])
    assert run["status"] == status, run
    return run


# -- reading what is not the run's ------------------------------------------------------------
async def test_worker_cannot_read_server_key_or_identity_db(host):
    run = await attack(host, "read-system", """
report(key=attempt(lambda: read(f"{data}/system/server.key")),
       db=attempt(lambda: read(f"{data}/system/identity.sqlite3")),
       db_write=attempt(lambda: write(f"{data}/system/identity.sqlite3")),
       listing=attempt(lambda: os.listdir(f"{data}/system")))
""")
    out = run["outputs"]
    for probe in ("key", "db", "db_write", "listing"):
        assert out[probe]["ok"] is False and out[probe]["error"] == "FileNotFoundError", out
    key = (host["data"] / "system" / "server.key").read_bytes()
    assert key.hex() not in str(run) and key.decode("latin-1") not in str(run)
    await unharmed(host)


async def test_worker_cannot_read_server_environment(host):
    run = await attack(host, "read-environ", """
parent = os.getppid()
report(ppid=parent,
       parent_env=attempt(lambda: sorted(k.split("=", 1)[0]
                                         for k in read(f"/proc/{parent}/environ").split("\\0")
                                         if k)),
       server_env=attempt(lambda: read(f"/proc/{inputs['server_pid']}/environ")),
       pids=sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
""")
    out = run["outputs"]
    assert out["server_env"]["ok"] is False, out
    parent = out["parent_env"]
    # The parent is the sandbox's own init: unreadable (privileged) or holding only the run's own
    # allow-listed variables.
    assert parent["ok"] is False or set(parent["value"]) <= ALLOWED_ENV, parent
    assert max(out["pids"]) < 100  # its own PID namespace: a handful of processes
    await unharmed(host)


async def test_worker_cannot_read_other_workspace_or_data_dir(host):
    run = await attack(host, "read-others", """
report(other=attempt(lambda: read(f"{data}/workspaces/other/workspace.md")),
       own_tree=attempt(lambda: read(f"{data}/workspaces/default/workspace.md")),
       data=attempt(lambda: os.listdir(data)),
       spool=attempt(lambda: os.listdir(f"{data}/spool")),
       root=sorted(os.listdir("/")))
""")
    out = run["outputs"]
    for probe in ("other", "own_tree", "data", "spool"):
        assert out[probe]["ok"] is False and out[probe]["error"] == "FileNotFoundError", out
    assert set(out["root"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc",
                                "root", "run", "sbin", "tmp", "usr", "work", "home", "opt"}
    await unharmed(host)


async def test_worker_sees_declared_context_read_only_and_no_other(host):
    run = await attack(host, "context-reader", """
report(about=attempt(lambda: read("context/company/about.md")[:20]),
       write=attempt(lambda: write("context/company/about.md")),
       create=attempt(lambda: write("context/company/new.md")),
       own_file=attempt(lambda: write("run.py")),
       inputs_file=attempt(lambda: write("inputs.json")),
       contexts=sorted(os.listdir("context")))
""", extra="contexts: [company]\n")
    out = run["outputs"]
    assert out["about"]["ok"] is True and out["contexts"] == ["company"]
    for probe in ("write", "create", "own_file", "inputs_file"):
        assert out[probe]["ok"] is False and out[probe]["errno"] in (errno.EROFS, errno.EACCES), out
    await unharmed(host)


async def test_worker_cannot_write_outside_its_scratch_dir(host):
    marker = uuid.uuid4().hex
    run = await attack(host, "write-outside", """
m = inputs["marker"]
report(usr=attempt(lambda: write(f"/usr/floom-{m}")), etc=attempt(lambda: write(f"/etc/floom-{m}")),
       root=attempt(lambda: write(f"/floom-{m}")), data=attempt(lambda: write(f"{data}/floom-{m}")),
       tree=attempt(lambda: write(f"{data}/workspaces/default/floom-{m}")),
       python=attempt(lambda: write(os.path.join(sys.base_prefix, f"floom-{m}"))),
       tmp=attempt(lambda: write(f"/tmp/floom-{m}")), scratch=attempt(lambda: write(f"floom-{m}")))
""", inputs={"marker": marker})
    out = run["outputs"]
    for probe in ("usr", "etc", "root", "data", "tree", "python"):
        assert out[probe]["ok"] is False, (probe, out[probe])
    assert out["tmp"]["ok"] is True and out["scratch"]["ok"] is True  # its own scratch dir
    for outside in (
        "/usr",
        "/etc",
        "/",
        "/tmp",
        str(host["data"]),
        os.path.realpath(sys.base_prefix),
    ):
        assert not Path(outside, f"floom-{marker}").exists()
    await unharmed(host)


# -- network ----------------------------------------------------------------------------------
CONNECT = """
def connect(host, port):
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
        return sock.recv(64).decode()

report(server=attempt(lambda: connect("127.0.0.1", inputs["port"])),
       outside=attempt(lambda: connect("192.0.2.1", 80)),
       interfaces=sorted(n for _, n in socket.if_nameindex()))
"""


async def test_worker_without_egress_has_no_network(host):
    run = await attack(host, "no-egress", CONNECT)
    out = run["outputs"]
    assert out["server"] == {
        "ok": False,
        "error": "ConnectionRefusedError",
        "errno": errno.ECONNREFUSED,
    }
    assert out["outside"]["ok"] is False and out["outside"]["errno"] == errno.ENETUNREACH, out
    assert out["interfaces"] == ["lo"]  # refused, not timed out: nothing to route through
    await unharmed(host)


async def test_worker_with_declared_egress_shares_host_network(host):
    """The documented consequence of `egress: true`: loopback services, the server included."""
    run = await attack(host, "with-egress", CONNECT,
                       extra="capabilities:\n  network:\n    egress: true\n")
    assert run["outputs"]["server"]["ok"] is True
    assert run["outputs"]["server"]["value"].split()[1] == "200"
    assert any("network shared (egress)" in line["message"] for line in run["logs"])
    await unharmed(host)


# -- processes --------------------------------------------------------------------------------
DAEMON = """
m = inputs["marker"]
subprocess.Popen(["setsid", sys.executable, "-c", "import time; time.sleep(300)", m],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # double fork: the grandchild is orphaned at once
    if os.fork() == 0:
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", m])
    os._exit(0)
time.sleep(0.5)
print("daemons started", flush=True)
report(started=True)
if inputs.get("linger"):
    time.sleep(300)
"""


@pytest.mark.parametrize(("how", "status", "code"), [("exit", "completed", None),
                                                      ("timeout", "failed", "timeout"),
                                                      ("cancel", "cancelled", "user_cancel")])
async def test_nothing_outlives_its_run(host, how, status, code):
    client = host["client"]
    marker = f"daemon-{uuid.uuid4().hex}"
    extra = "limits:\n  timeout_seconds: 3\n" if how == "timeout" else ""
    await hostile_worker(host, f"daemon-{how}", PRELUDE + DAEMON, extra=extra)
    rid = (await trigger(client, f"daemon-{how}", {"marker": marker, "linger": how != "exit"}))[
        "run_id"
    ]

    async def daemons_up() -> bool:
        return len(processes_with(marker)) == 2

    await wait_for(daemons_up, "both daemons running")
    if how == "cancel":
        assert (await client.post(f"/api/runs/{rid}/cancel")).status == 200
    run = await wait_run(client, rid)
    assert run["status"] == status and run.get("error_code") == code, run

    async def daemons_gone() -> bool:
        return not processes_with(marker)

    await wait_for(daemons_gone, "every process of the run ended with it")
    await unharmed(host)


FORK_BOMB = """
refused = False
while True:  # every process forks for ever, and keeps trying when refused
    try:
        os.fork()
    except OSError as exc:
        if not refused:
            print(f"fork refused: {errno.errorcode[exc.errno]}", flush=True)
            refused = True
        time.sleep(0.01)
"""


def _run_processes(data: Path, ws_uid: str, run_id: str) -> int | None:
    """How many processes the sandbox of `run_id` holds now (None: none found yet)."""
    for pid in processes_with(f"{data}/spool/{ws_uid}/{run_id}/work"):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "bwrap":
                return len(descendants(pid))
        except OSError:  # it ended meanwhile
            continue
    return None


async def test_fork_bomb_is_contained(host, settings):
    client = host["client"]
    await hostile_worker(
        host, "fork-bomb", PRELUDE + FORK_BOMB, extra="limits:\n  timeout_seconds: 4\n"
    )
    rid = (await trigger(client, "fork-bomb"))["run_id"]
    spool_uid = uid(client.server.app, "default")
    counts: list[int] = []
    while True:
        body = await (await client.get(f"/api/runs/{rid}")).json()
        if body["status"] not in ("queued", "running"):
            break
        count = await asyncio.to_thread(_run_processes, host["data"], spool_uid, rid)
        if count is not None:
            counts.append(count)
        assert (await client.get("/healthz")).status == 200  # the server keeps answering
        await asyncio.sleep(0.05)
    assert body["status"] == "failed" and body["error_code"] == "timeout", body
    assert counts and max(counts) > 10  # the bomb did go off
    # The limit stopped it: forks were refused (EAGAIN). A count taken by walking /proc is not
    # atomic, so it is only checked against a loose bound an unlimited bomb passes at once.
    assert any(line["message"] == "fork refused: EAGAIN" for line in body["logs"]), body["logs"]
    assert max(counts) < 2 * settings.run_max_processes, counts
    assert _run_processes(host["data"], spool_uid, rid) is None
    await unharmed(host)


async def test_worker_cannot_allocate_4gb(host):
    run = await attack(host, "memory-hog", """
report(alloc=attempt(lambda: len(bytearray(4 * 1024 ** 3))))
""")
    assert run["outputs"]["alloc"] == {"ok": False, "error": "MemoryError", "errno": None}
    await unharmed(host)


async def test_worker_cannot_write_file_over_size_limit(host, settings):
    run = await attack(host, "big-writer", """
def big():
    with open("big.bin", "wb") as fh:
        for _ in range(4):
            fh.write(b"x" * (1024 * 1024))

report(write=attempt(big), size=os.path.getsize("big.bin"))
""")
    out = run["outputs"]
    assert out["write"]["ok"] is False and out["write"]["errno"] == errno.EFBIG, out
    assert out["size"] <= settings.run_file_size_mb * 1024 * 1024
    await unharmed(host)


async def test_worker_filling_scratch_dir_is_stopped(host, settings):
    run = await attack(host, "disk-filler", """
for i in range(10_000):
    with open(f"fill-{i}.bin", "wb") as fh:
        fh.write(os.urandom(512 * 1024))
    time.sleep(0.01)
report(done=True)
""", extra="limits:\n  timeout_seconds: 60\n", status="failed")
    assert run["error_code"] == "scratch_limit_exceeded", run
    assert f"{settings.run_scratch_mb} MB" in run["error"]
    await unharmed(host)


# -- artifacts and logs -----------------------------------------------------------------------
async def test_symlinked_and_runner_files_are_not_artifacts(host):
    run = await attack(host, "sneaky-artifacts", """
os.makedirs("out/nested", exist_ok=True)
os.symlink("/etc/passwd", "out/passwd")
os.symlink("/", "out/root")
os.symlink("../inputs.json", "out/nested/inputs-link")
hard = attempt(lambda: os.link("/etc/passwd", "out/hard-passwd"))
write("out/.env.production", "X=1")
write("out/inputs.json", "{}")
write("out/server.key", "k")
write("out/fine.txt", "fine")
report(hard=hard)
""")
    assert run["outputs"]["hard"]["ok"] is False
    assert [a["path"] for a in run["artifacts"]] == ["out/fine.txt"]
    record = await committed(host["data"] / "workspaces" / "default", run["id"], "completed")
    base = record["_path"].rsplit("/", 1)[0]
    stored = git(host["data"] / "workspaces" / "default", "ls-tree", "-r", "--name-only",
                 "floom/runs", f"{base}/artifacts").split()
    assert stored == [f"{base}/artifacts/out/fine.txt"]
    await unharmed(host)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
async def test_secret_written_to_artifact_is_withheld(host, encoding):
    client = host["client"]
    run = await attack(host, f"leak-file-{encoding}", f"""
s = os.environ["{SECRET_NAME}"]
os.makedirs("out", exist_ok=True)
write("out/leak.txt", "token: " + {ENCODE_IN_WORKER[encoding]} + "\\n")
write("out/env-copy.txt", read(".env.local"))
write("out/ok.txt", "nothing secret")
report(done=True)
""")
    arts = {a["path"]: a for a in run["artifacts"]}
    assert arts["out/leak.txt"]["artifact_withheld"] == "secret"
    assert arts["out/env-copy.txt"]["artifact_withheld"] == "secret"
    assert arts["out/ok.txt"].get("artifact_withheld") is None
    resp = await client.get(
        f"/api/runs/{run['id']}/artifacts/{arts['out/leak.txt']['id']}/download"
    )
    assert resp.status == 404
    assert any(
        f"Artifact out/leak.txt withheld: it holds the value of secret {SECRET_NAME}"
        == line["message"]
        for line in run["logs"]
    )
    repo = host["data"] / "workspaces" / "default"
    record = await committed(repo, run["id"], "completed")
    assert record["artifacts"][1]["artifact_withheld"] == "secret"
    history = subprocess.run(["git", "-C", str(repo), "log", "-p", "floom/runs"], check=True,
                             capture_output=True).stdout
    assert b"nothing secret" in history
    assert ENCODINGS[encoding](SECRET_VALUE).encode() not in history
    assert SECRET_VALUE.encode() not in history
    await unharmed(host)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
async def test_secret_printed_is_redacted(host, encoding):
    run = await attack(host, f"leak-log-{encoding}", f"""
s = os.environ["{SECRET_NAME}"]
encoded = {ENCODE_IN_WORKER[encoding]}
print("leak: " + encoded, flush=True)
print("leak-err: " + encoded, file=sys.stderr, flush=True)
print("embedded: " + base64.b64encode(("xx" + s + "yyy").encode()).decode(), flush=True)
report(echo=encoded)
""")
    encoded = ENCODINGS[encoding](SECRET_VALUE)
    messages = [line["message"] for line in run["logs"]]
    assert f"leak: <REDACTED:{SECRET_NAME}>" in messages
    assert f"leak-err: <REDACTED:{SECRET_NAME}>" in messages
    assert run["outputs"]["echo"] == f"<REDACTED:{SECRET_NAME}>"
    embedded = next(m for m in messages if m.startswith("embedded: "))
    assert f"<REDACTED:{SECRET_NAME}>" in embedded
    repo = host["data"] / "workspaces" / "default"
    await committed(repo, run["id"], "completed")
    history = subprocess.run(["git", "-C", str(repo), "log", "-p", "floom/runs"], check=True,
                             capture_output=True).stdout
    assert encoded.encode() not in history and SECRET_VALUE.encode() not in history
    await unharmed(host)


# -- controls: the same attacks succeed without the sandbox -------------------------------------
async def test_control_without_sandbox_attacks_succeed(aiohttp_client, settings):
    """Proof that the attacks above are real: unconfined (FLOOM_SANDBOX=none) they work."""
    from floom_git.http.app import create_app
    from tests.conftest import AUTH

    unconfined = settings.replace(sandbox="none", shared_secret_role="admin")
    client = await aiohttp_client(create_app(unconfined), headers=AUTH)
    await client.server.app[MANAGER].create("other")
    client.server.app[SECRETS].set(
        uid(client.server.app, "default"), SECRET_NAME, SECRET_VALUE, "test"
    )
    host = {"client": client, "data": unconfined.data_dir, "port": client.server.port}
    run = await attack(host, "control", CONNECT.replace("report(", "report(key=attempt(lambda: len("
                       "read(f'{data}/system/server.key'))), other=attempt(lambda: read(f'{data}/"
                       "workspaces/other/workspace.md')[:10]), "))
    out = run["outputs"]
    assert out["key"]["ok"] is True and out["other"]["ok"] is True
    assert out["server"]["ok"] is True and len(out["interfaces"]) > 1
    assert any("NOT sandboxed" in line["message"] for line in run["logs"])
    health = await (await client.get("/api/health/details")).json()
    assert health["checks"]["sandbox"] == {"ok": False, "mode": "none",
                                           "detail": "FLOOM_SANDBOX=none: runs are not confined"}
    assert health["status"] == "degraded"

"""`./scripts/serve` as a person starts it, as a real subprocess: a taken port is one line and
exit 1 with no data directory; the banner names the URLs, where the secret came from and what
its role may do, and its clone line works as printed with the real git client; logs are text on
a terminal and JSON otherwise."""

from __future__ import annotations

import json
import os
import pty
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "scripts" / "serve"
FLOOM = ROOT / ".venv" / "bin" / "floom-git"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOOM_", "WORKEROS_"))}
    env.update(FLOOM_PORT=str(port), FLOOM_DATA_DIR=str(data), FLOOM_SCHEDULER="false",
               FLOOM_ARGON2_PROFILE="CHEAPEST", **extra)
    return env


class Server:
    """scripts/serve in its own process group; a thread reads its stderr line by line (select()
    on the pipe would miss lines already taken into the reader's buffer)."""

    def __init__(self, tmp: Path, port: int, data: str = "data", **extra: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [str(SERVE)],
            cwd=tmp,
            env=serve_env(tmp / data, port, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []  # read so far by read_until
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)  # the process closed its stderr

    def read_until(self, marker: str, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"serve ended early: {self.lines}")
            self.lines.append(line)
            if marker in line:
                return self.lines
        raise AssertionError(f"no {marker!r} within {timeout}s: {self.lines}")

    def rest(self) -> list[str]:
        """The lines after those read so far, once the process has ended."""
        self._reader.join(timeout=30)
        out = []
        while (line := self._queue.get_nowait()) is not None:
            out.append(line)
        return out

    def banner(self, name: str) -> str:
        """The value of one banner line (`  Clone:     ...`)."""
        if not any(line.startswith("  Sign in:") for line in self.lines):  # the banner's last
            self.read_until("  Sign in:")
        line = next(line for line in self.lines if line.startswith(f"  {name}:"))
        return line.split(":", 1)[1].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=30)


@pytest.fixture
def servers(tmp_path: Path):
    started: list[Server] = []

    def start(**extra: str) -> Server:
        server = Server(tmp_path, free_port(), **extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def bash(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **env})


def test_a_taken_port_is_one_line_and_exit_1_without_a_data_dir(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(SERVE)], cwd=tmp_path, env=serve_env(tmp_path / "data", port),
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: port {port} on 127.0.0.1 is already in use (another floom-git?); "
                      "choose another with --port or FLOOM_PORT"]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_banner_names_the_generated_secret_and_its_clone_line_works(tmp_path: Path, servers):
    server = servers()
    base = f"http://localhost:{server.port}"
    secret_file = tmp_path / "data" / "system" / "shared-secret"
    assert server.banner("Dashboard").startswith(f"{base}/")
    assert server.banner("API") == f"{base}/api"
    assert server.banner("Secret") == f"generated into {secret_file}"
    role = next(line for line in server.lines if line.strip().startswith("role:"))
    assert "member in every workspace" in role and "cannot manage members, tokens, secrets" in role
    secret = secret_file.read_text().strip()
    assert not any(secret in line for line in server.lines), "the banner never prints the secret"

    # Both printed commands work as printed, from another directory, with no secret in a URL.
    work = tmp_path / "person"
    work.mkdir()
    listed = bash(server.banner("Try"), work)
    assert listed.returncode == 0 and "word-count" in listed.stdout, listed
    clone = server.banner("Clone")
    assert "@" not in clone.rsplit(" ", 1)[1]
    sign_in = server.banner("Sign in").split("   (")[0]
    made = bash(f"{FLOOM} {sign_in.removeprefix('floom-git ').replace('NAME', 'ada')} </dev/null",
                work, FLOOM_ARGON2_PROFILE="CHEAPEST")
    assert made.returncode == 0 and made.stdout.startswith("password: "), made
    cloned = bash(clone, work)
    assert cloned.returncode == 0, cloned.stderr
    repo = work / "default"
    assert (repo / "workers" / "word-count" / "worker.yml").is_file()
    pushed = bash("echo 'More words.' >> workspace.md && git -c user.name=t -c user.email=t@x "
                  "commit -qam 'edit' && git push -q origin main", repo)
    assert pushed.returncode == 0, pushed.stderr

    # Logs after the banner are JSON lines when stderr is not a terminal.
    server.read_until("created workspace 'default'")
    assert json.loads(server.lines[-1])["msg"].startswith("created workspace 'default'")
    server.stop()
    assert server.proc.returncode == 0
    records = [json.loads(line) for line in server.rest() if line.startswith("{")]
    assert any(r["msg"] == "floom-git stopped" for r in records)
    assert [r for r in records if r["logger"] == "floom_git.access"] == [], (
        "requests: debug level only"
    )

    again = servers()
    assert again.banner("Secret") == f"read from {secret_file}"


def test_banner_with_floom_secret_and_admin_role(tmp_path: Path, servers):
    secret = "a-secret-of-more-than-16-characters"
    server = servers(FLOOM_SECRET=secret, WORKEROS_SHARED_SECRET_ROLE="admin")
    assert server.banner("Secret") == "FLOOM_SECRET (from the environment)"
    assert any("role: admin in every workspace" in line for line in server.lines)
    assert not (tmp_path / "data" / "system" / "shared-secret").exists()
    work = tmp_path / "person"
    work.mkdir()
    cloned = bash(server.banner("Clone"), work, FLOOM_SECRET=secret)
    assert cloned.returncode == 0, cloned.stderr
    refused = bash(server.banner("Clone").replace("default.git", "default.git other"), work,
                   FLOOM_SECRET="wrong-secret-of-16-characters")
    assert refused.returncode != 0


def test_logs_are_text_on_a_terminal(tmp_path: Path):
    port = free_port()
    main, term = pty.openpty()
    proc = subprocess.Popen([str(SERVE)], cwd=tmp_path, env=serve_env(tmp_path / "data", port),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=term,
                            start_new_session=True)
    os.close(term)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"created workspace" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        os.close(main)
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    line = next(line for line in text.splitlines() if "created workspace" in line)
    assert not line.lstrip().startswith("{")
    assert " INFO  " in line and "created workspace 'default'" in line


def test_debug_level_logs_one_line_per_request_with_tokens_redacted(tmp_path: Path, servers):
    server = servers(FLOOM_LOG_LEVEL="debug", FLOOM_SECRET="a-secret-of-more-than-16-characters")
    server.read_until("  Clone:")
    base = f"http://127.0.0.1:{server.port}"
    assert (
        bash(
            f"curl -s {base}/healthz && curl -s {base}/s/fls_not-a-real-token", tmp_path
        ).returncode
        == 0
    )
    server.stop()
    records = [json.loads(line) for line in server.rest() if line.startswith("{")]
    access = [r["msg"] for r in records if r["logger"] == "floom_git.access"]
    assert "GET /healthz 200" in access and "GET /s/[redacted] 404" in access, access
    assert not any("fls_not-a-real-token" in m for m in access)


def test_a_bad_log_level_is_one_line_and_exit_2(tmp_path: Path):
    done = subprocess.run([str(SERVE)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=serve_env(tmp_path / "data", free_port(), FLOOM_LOG_LEVEL="loud"))
    assert done.returncode == 2
    assert (
        "error: FLOOM_LOG_LEVEL must be one of debug, info, warning, error, not 'loud'"
        in done.stderr
    )
    assert not (tmp_path / "data").exists()


def test_the_served_loop_waits_for_child_processes_without_a_thread_each(tmp_path: Path):
    """serve() has asyncio see a git process's exit on a pidfd (3.11 otherwise starts and waits
    for a thread per child, on every push twice); exit codes still arrive. Run in a process of
    its own: the watcher is process-wide."""
    script = (
        "import asyncio, sys, threading\n"
        "from floom_git.serve import watch_children_by_pidfd\n"
        "pidfd = watch_children_by_pidfd()\n"
        "async def main():\n"
        "    before = threading.active_count()\n"
        "    procs = [await asyncio.create_subprocess_exec('sh', '-c', f'sleep 0.2; exit {i}')\n"
        "             for i in range(5)]\n"
        "    during = threading.active_count()\n"
        "    print(pidfd, before, during, [await p.wait() for p in procs])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    pidfd, before, during, codes = done.stdout.split(" ", 3)
    assert pidfd == str(sys.version_info < (3, 12) and hasattr(os, "pidfd_open"))
    assert before == during
    assert codes.strip() == "[0, 1, 2, 3, 4]"


def test_the_server_commands_do_not_import_the_command_line_client():
    # The client's commands are registered only for its own command lines: a server's start-up
    # does not pay for importing them; `floom-git --help` still lists them.
    script = (
        "import sys\n"
        "from floom_git import cli\n"
        "try:\n"
        "    cli.main(['serve', '--port', 'not-a-number'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 2, exc.code\n"
        "assert 'floom_git.client.main' not in sys.modules, 'the client was imported'\n"
    )
    python(script)
    listed = subprocess.run([sys.executable, "-m", "floom_git", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and " login " in listed.stdout and " serve " in listed.stdout


def test_a_started_server_has_not_imported_the_outbound_http_clients(tmp_path):
    # httpx2 and httpcore2 (a tenth of a second to import), the MCP SDK and authlib come with
    # the first connection test, sign-in or MCP request, not with every start-up.
    script = (
        "import asyncio, sys\n"
        "from aiohttp import web\n"
        "from floom_git import config\n"
        "from floom_git.http.app import create_app\n"
        "async def main():\n"
        f"    app = create_app(config.from_env(data_dir={str(tmp_path)!r}, watch=True))\n"
        "    runner = web.AppRunner(app)\n"
        "    await runner.setup()\n"
        "    await runner.cleanup()\n"
        "asyncio.run(main())\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "late = {'httpx2', 'httpcore2', 'mcp', 'authlib'} & loaded\n"
        "assert not late, late\n"
    )
    python(script)
    assert (tmp_path / "workspaces" / "default" / ".git").is_dir()  # it did start


def test_serve_runs_the_app_with_the_cyclic_gc_on_and_start_up_objects_frozen(tmp_path):
    # cli turns the GC off while the server's modules and app are made; serve() freezes what
    # exists then and turns it on again before the app runs.
    script = (
        "import gc, sys\n"
        "from aiohttp import web\n"
        "seen = []\n"
        "web.run_app = lambda app, **kw: seen.append((gc.isenabled(), gc.get_freeze_count() > 0,"
        " sys.getswitchinterval()))\n"
        "from floom_git import cli\n"
        "assert cli.main(['serve', '--port', '0', '--data-dir', sys.argv[1]]) == 0\n"
        "print(seen)\n"
    )
    assert python(script, str(tmp_path)) == "[(True, True, 0.0005)]"


def python(script: str, *args: str) -> str:
    """Run `script` in a fresh interpreter from the checkout; its stdout (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()

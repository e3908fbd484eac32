"""The pre-receive hook is a tiny client of the server's push validator (a Unix socket in the data
directory): Perl where perl is installed, else Python without pygit2, yaml or msgspec; either
refuses the push, saying why, whenever the server cannot answer. The real git client against the
real server, with each kind of hook."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.hooks import pre_receive
from floom_git.http.git_http import TRANSPORT
from floom_git.services.git_transport import hook_script
from tests.compat.test_git_http import Git, manifest
from tests.conftest import git

HEAVY = ("pygit2", "yaml", "msgspec", "floom_git", "aiohttp")
PERL = shutil.which("perl")
UPDATE = b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\n"


@pytest.fixture(params=["perl", "python"])
def flavour(request, monkeypatch, tmp_path) -> str:
    """Which hook the server writes: Perl when perl is on the server's PATH; on a machine
    without it (a PATH holding only git), the Python client."""
    if request.param == "perl":
        if PERL is None:
            pytest.skip("perl is not installed")
        return "perl"
    bin_dir = tmp_path / "bin-without-perl"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bin_dir))
    return "python"


@pytest.fixture
async def server(aiohttp_server, settings, flavour):
    from floom_git.http.app import create_app

    return await aiohttp_server(create_app(settings))


@pytest.fixture
def gitc(server, git_env, tmp_path) -> Git:
    return Git(server, git_env, tmp_path)


def test_server_writes_the_hook_of_its_flavour(server, flavour):
    hook = server.app[TRANSPORT].hooks_dir / "pre-receive"
    first = hook.read_text().splitlines()[0]
    assert first == (f"#!{PERL}" if flavour == "perl" else "#!/bin/sh")
    assert os.access(hook, os.X_OK)


def _run_hook(script: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    hook = tmp_path / "pre-receive"
    hook.write_text(script)
    hook.chmod(0o755)
    return subprocess.run([str(hook)], input=UPDATE, capture_output=True, check=False,
                          env={"PATH": os.defpath, **env})


@pytest.mark.skipif(PERL is None, reason="perl is not installed")
@pytest.mark.parametrize("env", [{}, {"FLOOM_PUSH_ID": "x"},
                                 {"FLOOM_PUSH_ID": "x", "FLOOM_HOOK_SOCKET": "/nonexistent/s"}])
def test_perl_hook_fails_closed_alone(tmp_path, env):
    """Run as git runs it, with no validator named or none listening: it refuses, saying so."""
    done = _run_hook(hook_script(PERL), tmp_path, env)
    assert done.returncode == 1
    assert done.stderr.decode().startswith("push rejected: the server could not check this "
                                            "push (")
    assert "nothing was changed on the server" in done.stderr.decode()


@pytest.mark.skipif(PERL is None, reason="perl is not installed")
def test_perl_hook_refuses_when_the_server_hangs_up_without_a_verdict(tmp_path):
    import socket
    import threading

    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            seen.append(data)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        done = _run_hook(hook_script(PERL), tmp_path, {
            "FLOOM_PUSH_ID": "abc", "FLOOM_HOOK_SOCKET": str(path),
            "GIT_QUARANTINE_PATH": "./objects/tmp_objdir-incoming-x"})
    finally:
        thread.join(10)
        listener.close()
    assert seen == [pre_receive.request("abc", "./objects/tmp_objdir-incoming-x", UPDATE)]
    assert done.returncode == 1
    assert "push rejected: the server gave no answer about this push" in done.stderr.decode()


def test_hook_starts_without_the_heavy_modules_and_fails_closed_alone():
    """Run as git runs it, with no validator named: it refuses, and imported nothing heavy."""
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-X", "importtime", pre_receive.__file__],
        input=b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\n", capture_output=True,
        env={"PATH": os.environ["PATH"]}, check=False)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "push rejected: the server could not check this push" in err
    imported = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines()
                if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in HEAVY}, imported


async def test_push_lands_and_a_broken_manifest_is_refused_naming_line_and_column(gitc, server):
    repo = await gitc.clone()
    sha = await gitc.commit(repo, {"workers/word-count/worker.yml": manifest("word-count", "Yo")})
    await gitc("push", "-q", "origin", "main", cwd=repo)
    assert gitc.server_main() == sha
    assert git(gitc.ws_path, "status", "--porcelain") == ""
    await gitc.commit(repo, {"workers/word-count/worker.yml": "name: [word-count\n"})
    result = await gitc("push", "origin", "main", cwd=repo, check=False)
    assert result.code != 0
    assert ("remote:   - workers/word-count/worker.yml: invalid YAML (line 2, column 1)"
            in result.err)
    assert "(pre-receive hook declined)" in result.err
    assert gitc.server_main() == sha


async def test_push_refused_with_remote_message_when_validator_is_down(gitc, server):
    transport = server.app[TRANSPORT]
    repo = await gitc.clone()
    before = git(gitc.ws_path, "for-each-ref")
    await gitc.commit(repo, {"workspace.md": "# while the validator is down\n"})
    await transport.hook_server.stop()
    try:
        result = await gitc("push", "origin", "main", cwd=repo, check=False)
    finally:
        await transport.hook_server.start()
    assert result.code != 0
    assert "remote: push rejected: the server could not check this push" in result.err
    assert "(pre-receive hook declined)" in result.err
    assert git(gitc.ws_path, "for-each-ref") == before
    assert git(gitc.ws_path, "status", "--porcelain") == ""
    await gitc("push", "-q", "origin", "main", cwd=repo)  # answered again: it lands
    assert git(gitc.ws_path, "show", "main:workspace.md") == "# while the validator is down\n"


async def ask(server, data: bytes) -> bytes:
    path = server.app[TRANSPORT].hook_server.path
    return await asyncio.to_thread(pre_receive.ask, str(path), data)


@pytest.mark.parametrize("data", [
    pre_receive.request("no-such-push", "", b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\n"),
    b"hello\n\n",
    b"",
])
async def test_validator_refuses_what_is_no_push_of_its_own(server, data, monkeypatch):
    monkeypatch.chdir(Path.cwd())  # ask() changes into the socket's folder
    answer = await ask(server, data)
    verdict, _, text = answer.partition(b"\n")
    assert verdict == b"refused" and b"push rejected" in text


@pytest.fixture
def long_settings(tmp_path: Path, settings: Settings) -> Settings:
    deep = tmp_path / ("a-data-directory-with-a-long-name-" * 3) / "data"
    return settings.replace(data_dir=deep)


async def test_push_lands_when_the_socket_path_is_longer_than_an_address(
        aiohttp_server, long_settings, flavour, git_env, tmp_path):
    from floom_git.http.app import create_app

    server = await aiohttp_server(create_app(long_settings))
    assert len(str(server.app[TRANSPORT].hook_server.path)) > 108
    gitc = Git(server, git_env, tmp_path)
    repo = await gitc.clone()
    sha = await gitc.commit(repo, {"workspace.md": "# deep\n"})
    await gitc("push", "-q", "origin", "main", cwd=repo)
    assert gitc.server_main() == sha


def test_validator_reads_a_quarantine_named_relative_to_the_git_folder(tmp_path):
    """git runs the hook in the .git folder and may name the quarantine from there; the hook
    passes it on as it is and the validator resolves it (never from its own working folder)."""
    from floom_git.services.push import PushPolicy, validate_quarantined

    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "notes.md").write_text("one\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    old = git(repo, "rev-parse", "main").strip()
    folder = repo / ".git" / "objects" / "tmp_objdir-incoming-test"
    folder.mkdir()
    in_quarantine = {**os.environ, "GIT_OBJECT_DIRECTORY": str(folder),
                     "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(repo / ".git" / "objects")}
    blob = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
                          input=b"x" * 200, env=in_quarantine, capture_output=True,
                          check=True).stdout.decode().strip()
    tree = subprocess.run(["git", "-C", str(repo), "mktree"],
                          input=f"100644 blob {blob}\tbig.bin\n".encode(), env=in_quarantine,
                          capture_output=True, check=True).stdout.decode().strip()
    new = subprocess.run(["git", "-C", str(repo), "commit-tree", tree, "-p", old, "-m", "two"],
                         env=in_quarantine, capture_output=True,
                         check=True).stdout.decode().strip()
    updates = f"{old} {new} refs/heads/main\n"
    policy = PushPolicy(max_file_bytes=100)
    git_dir = str(repo / ".git")
    relative = validate_quarantined(git_dir, "./objects/tmp_objdir-incoming-test", updates, policy)
    absolute = validate_quarantined(git_dir, str(folder), updates, policy)
    assert relative == absolute
    assert [p.where for p in relative] == ["big.bin"]  # the pushed blob was read: 200 > 100
    with pytest.raises(ValueError, match="not a quarantine"):
        validate_quarantined(git_dir, "../objects-elsewhere", updates, policy)


async def test_a_pack_git_refuses_before_the_hook_leaves_no_lock_and_no_journal(gitc, server):
    """git refuses a pack itself (an fsck error) before any hook runs: nothing moved, no lock is
    held and no journal is left, whichever hook the server wrote, and the next push lands."""
    from floom_git.http.keys import MANAGER
    from floom_git.storage import journal

    repo = await gitc.clone()
    before = git(gitc.ws_path, "for-each-ref")
    tree = (await gitc("rev-parse", "HEAD^{tree}", cwd=repo)).out.strip()
    head = (await gitc("rev-parse", "HEAD", cwd=repo)).out.strip()
    broken = (f"tree {tree}\nparent {head}\nauthor Ada <ada-at-example.com 1700000000 +0000\n"
              "committer Ada <ada@example.com> 1700000000 +0000\n\nbroken author\n")
    (repo / "broken-commit").write_text(broken)
    sha = (await gitc("hash-object", "-t", "commit", "-w", "--literally", "broken-commit",
                      cwd=repo)).out.strip()
    result = await gitc("push", "origin", f"{sha}:refs/heads/main", cwd=repo, check=False)
    assert result.code != 0
    assert "(unpacker error)" in result.err and "pre-receive hook" not in result.err, result.err
    assert git(gitc.ws_path, "for-each-ref") == before
    ws = server.app[MANAGER].get("default")
    assert not journal.pending(ws.git_dir)
    assert not ws.writer._lock.locked()
    assert server.app[TRANSPORT].pushes == {}
    await gitc.commit(repo, {"workspace.md": "# after a refused pack\n"})
    await gitc("push", "-q", "origin", "HEAD:main", cwd=repo)  # the next push lands
    assert git(gitc.ws_path, "status", "--porcelain") == ""


async def test_a_push_bringing_no_object_is_checked_and_lands(gitc, server):
    """A branch and a tag at a commit the server already has: git receives an empty pack; the
    hook still asks, and the refs land (a server-owned branch is still refused)."""
    repo = await gitc.clone()
    main = gitc.server_main()
    await gitc("push", "-q", "origin", "HEAD:refs/heads/feature", "HEAD:refs/tags/v0", cwd=repo)
    refs = git(gitc.ws_path, "for-each-ref", "--format=%(objectname) %(refname)")
    assert f"{main} refs/heads/feature" in refs and f"{main} refs/tags/v0" in refs
    result = await gitc("push", "origin", "HEAD:refs/heads/floom/mine", cwd=repo, check=False)
    assert result.code != 0
    assert "remote:   - refs/heads/floom/mine: branch is owned by the server" in result.err
    assert "refs/heads/floom/mine" not in git(gitc.ws_path, "for-each-ref")

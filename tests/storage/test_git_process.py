"""The one environment of git processes: built from nothing, so the server's own settings,
variables and credential helpers never reach git, and git never prompts; and a git process with
a body streamed in and its output streamed out."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from floom_git.storage import history
from floom_git.storage.git_process import exchange, git_env, pkt_line
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature

SIG = signature("tester", "tester@example.com")


def test_git_env_leaks_nothing_of_the_servers_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("FLOOM_SECRET", "do-not-pass")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:1")
    env = git_env("git", home=tmp_path, GIT_PROTOCOL="version=2")
    assert set(env) == {"PATH", "HOME", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL",
                        "GIT_TERMINAL_PROMPT", "LC_ALL", "PYTHONDONTWRITEBYTECODE", "GIT_PROTOCOL"}
    assert env["HOME"] == str(tmp_path) and env["GIT_TERMINAL_PROMPT"] == "0"


def test_history_runs_git_with_that_environment(monkeypatch, tmp_path: Path):
    repo = WorkspaceRepo.create(tmp_path / "ws", {"a.txt": b"a\n"}, "init", SIG)
    repo.commit(Changeset({"a.txt": b"b\n"}, "second"), SIG)
    # A GIT_DIR of the server's own environment would point git at another repository.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert [e.message for e in history.log(repo.path, ["a.txt"])] == ["second", "init"]


def test_pkt_line_counts_its_own_length():
    assert pkt_line("# service=git-upload-pack\n") == b"001e# service=git-upload-pack\n"
    assert pkt_line(b"") == b"0004"


async def test_exchange_streams_a_body_through_git_and_its_output_out(tmp_path: Path):
    pieces = [b"x" * 70000, b"y" * 5]

    async def body():
        for piece in pieces:
            yield piece

    out: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        out.append(chunk)

    code, err = await exchange(["git", "hash-object", "--stdin"], git_env(home=tmp_path),
                               cwd=tmp_path, body=body(), sink=sink, timeout=30)
    expected = subprocess.run(["git", "hash-object", "--stdin"], input=b"".join(pieces),
                              capture_output=True, check=True).stdout
    assert (code, err, b"".join(out)) == (0, "", expected)


async def test_exchange_stops_git_when_the_body_fails(tmp_path: Path):
    started: list[int] = []

    async def body():
        yield b"part of a request\n"
        started.append(1)
        raise ConnectionResetError("the client went away")

    async def sink(chunk: bytes) -> None:
        raise AssertionError("git answered half a request")

    with pytest.raises(ConnectionResetError):
        # hash-object answers only once stdin ends, which it never does here
        await exchange(["git", "hash-object", "--stdin"], git_env(home=tmp_path), cwd=tmp_path,
                       body=body(), sink=sink, timeout=30)
    assert started == [1]

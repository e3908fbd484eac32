"""The one environment of git processes: built from nothing, so the server's own settings,
variables and credential helpers never reach git, and git never prompts."""

from __future__ import annotations

from pathlib import Path

from floom_git.storage import history
from floom_git.storage.git_process import git_env, pkt_line
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

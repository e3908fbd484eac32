"""Property: any sequence of tree changes pushed with the real git client (file <-> folder at any
depth, the executable bit, deletes of whole trees, renames, case-only renames) leaves the
server's working tree and index exactly equal to main after every push. The server runs as a
real process with its file watcher on, so a wrong sync would also show as a stray `sync:`
commit refusing the next push."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.stress_server import ServerProcess, server_env
from tests.compat.test_push_tree_changes import apply, worktree_equals_main
from tests.conftest import git

SEGMENT = st.sampled_from(["a", "A", "b", "c.txt"])  # few names: many collisions and case pairs
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "prop/" + "/".join(parts))
STEP = st.one_of(
    st.tuples(st.just("write"), PATH, st.text(alphabet="xy\n", max_size=6), st.booleans()),
    st.tuples(st.just("rm"), PATH),
    st.tuples(st.just("mv"), PATH, PATH),
    st.tuples(st.just("chmod"), PATH, st.booleans()),
)
PUSHES = st.lists(st.lists(STEP, min_size=1, max_size=4), min_size=1, max_size=4)


def client(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True,
                          text=True, check=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("property")
    home = work / "home"
    home.mkdir()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "Ada",
           "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@example.com"}
    server = ServerProcess(work / "data", work / "server.log",
                           env=server_env({"FLOOM_SYNC_QUIET_SECONDS": "0.2"}))
    server.start()
    try:
        asyncio.run(server.wait_ready())
        clone = work / "clone"
        result = client(work, "clone", "-q", server.git_url(), str(clone), env=env)
        assert result.returncode == 0, result.stderr
        yield server, clone, env
    finally:
        server.stop()


@pytest.mark.timeout(600)
@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pushes=PUSHES)
def test_random_tree_changes_pushed_leave_worktree_equal_to_main(served, pushes):
    server, clone, env = served
    ws_path = server.data_dir / "workspaces" / "default"
    for steps in pushes:
        for step in steps:
            apply(clone, step)
        client(clone, "add", "-A", env=env)
        if not client(clone, "status", "--porcelain", env=env).stdout:
            continue
        assert client(clone, "commit", "-qm", repr(steps), env=env).returncode == 0
        pushed = client(clone, "push", "-q", "origin", "main", env=env)
        assert pushed.returncode == 0, f"{steps}: {pushed.stderr}\n{server.log_tail()}"
        head = client(clone, "rev-parse", "HEAD", env=env).stdout.strip()
        assert git(ws_path, "rev-parse", "main").strip() == head, steps
        worktree_equals_main(ws_path)

"""A push that puts a folder where the workspace reads a file (an issue file, workspace.yml, the
registries, a worker's manifest), or a file where it reads a folder (workers/, contexts/, .floom/,
the issues folder, a worker or context folder), is refused with a problem naming that path,
whether something else stood there before (a type change) or not; a type change anywhere else
lands. Real git client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.test_git_http import Git
from tests.conftest import git

ISSUE = "---\nid: ISSUE-0001\ntitle: One\nstatus: open\n---\nbody\n"


@pytest.fixture
def gitc(server, git_env, tmp_path) -> Git:
    return Git(server, git_env, tmp_path)


async def push_folder_at(gitc: Git, repo: Path, path: str) -> str:
    """Replace whatever is at `path` by a folder holding one file; push; git's stderr."""
    await gitc("rm", "-q", "-r", "--ignore-unmatch", path, cwd=repo)
    await gitc.commit(repo, {f"{path}/inside.md": "x\n"}, f"folder at {path}")
    return await push_refused(gitc, repo)


async def push_file_at(gitc: Git, repo: Path, path: str) -> str:
    """Replace whatever is at `path` by a file; push; git's stderr."""
    await gitc("rm", "-q", "-r", "--ignore-unmatch", path, cwd=repo)
    await gitc.commit(repo, {path: "a file\n"}, f"file at {path}")
    return await push_refused(gitc, repo)


async def push_refused(gitc: Git, repo: Path) -> str:
    before = git(gitc.ws_path, "for-each-ref")
    result = await gitc("push", "origin", "main", cwd=repo, check=False)
    assert result.code != 0, result.err
    assert git(gitc.ws_path, "for-each-ref") == before  # no ref moved
    assert git(gitc.ws_path, "status", "--porcelain") == ""
    return result.err


@pytest.mark.parametrize("existing", [True, False], ids=["type-change", "new"])
@pytest.mark.parametrize("path", [
    ".floom/issues/ISSUE-0001.md", "workspace.yml", ".floom/connections.yml",
    "workspace-tools.yml", "workers/word-count/worker.yml", "contexts/company/context.yml",
    ".floom/issues/ISSUE-0001.comments.ndjson", "workspace.md",
])
async def test_push_of_folder_where_a_file_is_read_names_the_path(gitc, path, existing):
    repo = await gitc.clone()
    if existing and not (repo / path).exists():
        content = ISSUE if path.endswith(".md") else "{}\n"
        if path == ".floom/connections.yml":
            content = "connections: []\n"
        elif path == "workspace-tools.yml":
            content = "tools: []\n"
        await gitc.commit(repo, {path: content}, f"add {path}")
        await gitc("push", "-q", "origin", "main", cwd=repo)
    err = await push_folder_at(gitc, repo, path)
    assert "could not check" not in err, err
    assert f"remote:   - {path}: " in err, err


async def test_push_type_change_of_other_paths_lands(gitc):
    repo = await gitc.clone()
    await gitc.commit(repo, {"notes.md": "# notes\n"}, "a file")
    await gitc("rm", "-q", "notes.md", cwd=repo)
    await gitc.commit(repo, {"notes.md/inner.md": "# inner\n"}, "file to folder")
    await gitc("push", "-q", "origin", "main", cwd=repo)
    assert git(gitc.ws_path, "show", "main:notes.md/inner.md") == "# inner\n"


@pytest.mark.parametrize("path", [
    "workers", "workers/word-count", "workers/brand-new", "contexts", "contexts/company",
    "contexts/brand-new", ".floom", ".floom/issues",
])
async def test_push_of_file_where_a_folder_is_read_names_the_path(gitc, path):
    repo = await gitc.clone()
    err = await push_file_at(gitc, repo, path)
    assert "could not check" not in err, err
    assert f"remote:   - {path}: must be a folder, not a file" in err, err
    # The workspace keeps working: the person's next push, without that file, lands.
    await gitc("reset", "-q", "--hard", "origin/main", cwd=repo)
    await gitc.commit(repo, {"workers/.gitkeep": "", "contexts/README.txt/x.md": "x\n"}, "fine")
    await gitc("push", "-q", "origin", "main", cwd=repo)
    assert git(gitc.ws_path, "status", "--porcelain") == ""

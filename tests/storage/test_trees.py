"""Trees written from their raw entries are the trees git would write: git's order (a folder
sorts as if its name ended in '/'), modes kept, folders emptied away, and `git fsck --strict`
accepts every one."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pygit2
import pytest

from floom_git.storage.changeset import TreeRef
from floom_git.storage.packs import Objects
from floom_git.storage.repo import Changeset, WorkspaceRepo, signature
from floom_git.storage.trees import TreeWriter
from tests.conftest import git

SIG = signature("tester", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> WorkspaceRepo:
    return WorkspaceRepo.create(tmp_path / "ws", {"README.md": b"r\n"}, "init", SIG)


def files_of(repo: WorkspaceRepo) -> dict[str, str]:
    out = {}
    for line in git(repo.path, "ls-tree", "-r", "main").splitlines():
        meta, path = line.split("\t", 1)
        mode, _, oid = meta.split()
        out[path] = f"{mode} {git(repo.path, 'cat-file', 'blob', oid)}"
    return out


def fsck(repo: WorkspaceRepo) -> None:
    subprocess.run(["git", "-C", str(repo.path), "fsck", "--strict", "--no-dangling"],
                   check=True, capture_output=True)


def test_names_that_sort_differently_as_folders_are_in_gits_order(repo):
    names = ["a", "a-b", "a.b", "a0", "a/x", "b.d/y", "b", "b-", "b/z", "c/d/e", "c.d", "c-d/e"]
    changes = {n: n.encode() for n in names if n not in ("a", "b")}
    changes |= {"a.txt": b"1", "b.txt": b"2"}
    repo.commit(Changeset(changes, "names"), SIG)
    fsck(repo)
    assert set(files_of(repo)) == set(changes) | {"README.md"}


def test_random_edits_match_what_git_reads_back(repo):
    rng = random.Random(7)
    expected = {"README.md": "100644 r\n"}
    folders = ["", "d", "d/e", "f", "d/e/g", "h.i"]
    for step in range(120):
        folder = rng.choice(folders)
        name = rng.choice(["x", "y.md", "z-1", "w", "x.y"])
        path = f"{folder}/{name}" if folder else name
        action = rng.random()
        if action < 0.6:
            clash = any(p.startswith(path + "/") or path.startswith(p + "/") for p in expected)
            if clash:
                continue
            data = f"{step}\n"
            repo.commit(Changeset({path: data.encode()}, f"write {path}"), SIG)
            expected[path] = f"100644 {data}"
        elif action < 0.8 and folder:
            repo.commit(Changeset({folder: None}, f"rm {folder}"), SIG)
            expected = {p: v for p, v in expected.items() if not p.startswith(folder + "/")}
        else:
            repo.commit(Changeset({path: None}, f"rm {path}"), SIG)
            expected.pop(path, None)
        assert files_of(repo) == expected, step
    fsck(repo)


def test_an_executable_stays_executable_when_rewritten(repo):
    os.chmod(repo.path / "README.md", 0o755)
    git(repo.path, "add", "README.md")
    git(repo.path, "commit", "-qm", "exec")
    repo.commit(Changeset({"README.md": b"new\n"}, "rewrite"), SIG)
    assert files_of(repo)["README.md"] == "100755 new\n"


def test_a_folder_restored_whole_and_an_emptied_folder_gone(repo):
    first = repo.commit(Changeset({"d/a.txt": b"a", "d/b/c.txt": b"c"}, "d"), SIG)
    tree = repo.repo.revparse_single(f"{first.sha}:d").id
    repo.commit(Changeset({"d": None}, "rm"), SIG)
    assert "d/a.txt" not in files_of(repo)
    repo.commit(Changeset({"d": TreeRef(tree)}, "restore"), SIG)
    assert files_of(repo)["d/b/c.txt"] == "100644 c"
    repo.commit(Changeset({"d/a.txt": None, "d/b/c.txt": None}, "empty"), SIG)
    assert git(repo.path, "ls-tree", "main").count("\t") == 1  # README.md only
    fsck(repo)


def test_editing_a_kept_tree_twice_from_the_same_base_gives_two_trees(repo):
    objects = Objects()
    writer = TreeWriter(repo.repo, objects)
    base = repo.tip().tree.id
    one = writer.build(base, {"one.txt": b"1"})
    two = writer.build(base, {"two.txt": b"2"})
    assert one is not None and two is not None
    objects.write(Path(repo.repo.path))
    assert sorted(e.name for e in repo.repo[one]) == ["README.md", "one.txt"]
    assert sorted(e.name for e in repo.repo[two]) == ["README.md", "two.txt"]
    assert writer.build(base, {"README.md": None}) is None
    assert isinstance(repo.repo[base], pygit2.Tree)

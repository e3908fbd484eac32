"""`workers list|show|validate|push|pull` against the real server: a worker folder makes the
round trip disk -> server -> disk byte for byte, and the server's git history shows the commits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.conftest import Cli, member_token
from tests.conftest import AUTH, WORKER_YML, commit_count, git

RUN_PY = 'import json\njson.dump({"status": "success", "outputs": {}}, open("result.json", "w"))\n'
BINARY = bytes(range(256)) * 4


def make_folder(root: Path, name: str = "greeter") -> Path:
    root.mkdir(parents=True)
    (root / "worker.yml").write_text(WORKER_YML.format(name=name, title="Greeter"))
    (root / "run.py").write_text(RUN_PY)
    (root / "lib").mkdir()
    (root / "lib" / "helper.py").write_text("GREETING = 'hi'\n")
    (root / "data.bin").write_bytes(BINARY)
    # stays home: secrets, caches, virtualenvs
    (root / ".env").write_text("API_KEY=s3cret\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"\0")
    (root / ".venv").mkdir()
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    return root


async def _server_files(client, worker_id: str) -> dict[str, dict]:
    resp = await client.get(f"/api/workers/{worker_id}")
    assert resp.status == 200, await resp.text()
    return {f["path"]: f for f in (await resp.json())["files"]}


async def test_push_creates_then_replaces_and_pull_round_trips(
    cli, tmp_path, aiohttp_client, server, ws_path
):
    api = await aiohttp_client(server, headers=AUTH)
    src = make_folder(tmp_path / "greeter")
    before = commit_count(ws_path)

    created = await cli("workers", "push", str(src))
    assert created.code == 0, created.err
    assert "Created worker greeter" in created.err and "left out .env" in created.err
    files = await _server_files(api, "greeter")
    assert sorted(files) == ["data.bin", "lib/helper.py", "run.py", "worker.yml"]
    assert files["data.bin"]["binary"] and files["lib/helper.py"]["content"] == "GREETING = 'hi'\n"
    assert commit_count(ws_path) == before + 1

    unchanged = await cli("workers", "push", str(src))
    assert unchanged.code == 0 and "already matches" in unchanged.err
    assert commit_count(ws_path) == before + 1

    (src / "lib" / "helper.py").unlink()
    (src / "README.md").write_text("# Greeter\n")
    updated = await cli("workers", "push", str(src), "--json")
    assert updated.code == 0, updated.err
    assert {f["path"] for f in updated.json()["files"]} == {
        "README.md",
        "data.bin",
        "run.py",
        "worker.yml",
    }
    assert "worker greeter: replace files" in git(ws_path, "log", "-1", "--format=%s")

    dest = tmp_path / "pulled"
    pulled = await cli("workers", "pull", "greeter", str(dest))
    assert pulled.code == 0, pulled.err
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == {"README.md": b"# Greeter\n", "data.bin": BINARY, "run.py": RUN_PY.encode(),
                   "worker.yml": (src / "worker.yml").read_bytes()}


async def test_pull_defaults_to_a_folder_named_after_the_worker(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = await cli("workers", "pull", "word-count", "--json")
    assert result.code == 0, result.err
    assert result.json()["files"] == ["run.py", "worker.yml"]
    assert (tmp_path / "word-count" / "worker.yml").read_text().startswith('schema_version: "0.3"')


async def test_pull_refuses_to_overwrite_local_changes_without_force(cli, tmp_path):
    dest = tmp_path / "wc"
    assert (await cli("workers", "pull", "word-count", str(dest))).code == 0
    (dest / "run.py").write_text("print('my edit')\n")
    (dest / "notes.txt").write_text("mine\n")
    (dest / ".env").write_text("KEEP=1\n")
    refused = await cli("workers", "pull", "word-count", str(dest))
    assert refused.code == 1
    assert "2 local file(s) differ" in refused.err and "--force" in refused.err
    assert (dest / "run.py").read_text() == "print('my edit')\n"

    forced = await cli("workers", "pull", "word-count", str(dest), "--force")
    assert forced.code == 0, forced.err
    assert "deleted notes.txt" in forced.err and not (dest / "notes.txt").exists()
    assert (dest / "run.py").read_text() != "print('my edit')\n"
    assert (dest / ".env").read_text() == "KEEP=1\n"  # never pushed, so never deleted


async def test_list_and_show_workers(cli):
    listed = await cli("workers", "list")
    assert listed.code == 0, listed.err
    assert "word-count" in listed.out and "ready" in listed.out
    shown = await cli("workers", "show", "word-count")
    assert shown.code == 0, shown.err
    assert "text (textarea, required)" in shown.out and "run.py" in shown.out
    assert "manual" in shown.out
    as_json = await cli("workers", "show", "word-count", "--json")
    assert as_json.json()["id"] == "word-count"


@pytest.mark.parametrize("command", [("workers", "show", "nope"), ("workers", "pull", "nope"),
                                     ("run", "nope")])
async def test_unknown_worker_is_named(cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = await cli(*command)
    assert result.code == 1 and result.err == "error: worker 'nope' not found\n"


async def test_validate_accepts_a_good_folder(cli, tmp_path):
    src = make_folder(tmp_path / "greeter")
    result = await cli("workers", "validate", str(src), "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert body["valid"] and body["worker_id"] == "greeter" and body["skipped"] == [".env"]
    assert body["files"] == ["data.bin", "lib/helper.py", "run.py", "worker.yml"]


@pytest.mark.parametrize("edit,message", [
    (lambda d: (d / "worker.yml").unlink(), "worker.yml: file is missing"),
    (lambda d: (d / "run.py").unlink(), "entry file 'run.py' is missing"),
    (lambda d: (d / "worker.yml").write_text("name: [unclosed\n"), "worker.yml"),
    (lambda d: (d / "worker.yml").write_text(
        WORKER_YML.format(name="greeter", title="G").replace("version: 1.0.0", "version: one")),
     "$.version"),
    (lambda d: (d / "worker.yml").write_text(WORKER_YML.format(name="greeter", title="x" * 300)),
     "$.title"),
])
async def test_validate_and_push_refuse_a_bad_folder_without_writing(cli, tmp_path, ws_path, edit,
                                                                     message):
    src = make_folder(tmp_path / "greeter")
    edit(src)
    before = commit_count(ws_path)
    for command in ("validate", "push"):
        result = await cli("workers", command, str(src))
        assert result.code == 1, (command, result.err)
        assert result.err.startswith("error: ") and message in result.err
    invalid = await cli("workers", "validate", str(src), "--json")
    assert invalid.code == 1 and invalid.json()["valid"] is False
    assert commit_count(ws_path) == before


async def test_push_reports_what_the_server_refuses(aiohttp_server, base_env, tmp_path, settings):
    from floom_git.http.app import create_app

    small = await aiohttp_server(create_app(settings.replace(data_dir=tmp_path / "small",
                                                             max_file_bytes=4096)))
    src = make_folder(tmp_path / "greeter")
    (src / "big.txt").write_text("x" * 10_000)
    token = member_token(small, "ada")
    result = await Cli({**base_env, "FLOOM_TOKEN": token})("workers", "push", str(src), "--server",
                                                          str(small.make_url("")))
    assert result.code == 1 and result.err.startswith("error: ") and "(HTTP 413)" in result.err


async def test_a_viewer_cannot_push(base_env, tmp_path, server):
    viewer = Cli({**base_env, "FLOOM_TOKEN": member_token(server, "vic", "viewer")})
    result = await viewer("workers", "push", str(make_folder(tmp_path / "greeter")))
    assert result.code == 1 and "(HTTP 403)" in result.err

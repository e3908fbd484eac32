"""Workers API against the real server and a real repository."""

from __future__ import annotations

import io
import zipfile

from floom_git import paths
from floom_git.http.keys import MANAGER
from floom_git.schemas.connections import CONNECTIONS_FILE
from floom_git.services import agent_setup, connection_files
from floom_git.services.actor import SYSTEM
from floom_git.storage.repo import Changeset
from tests.conftest import WORKER_YML, commit_count, git, worker_body


async def test_list_workers_default_workspace_has_examples(client):
    resp = await client.get("/api/workers")
    assert resp.status == 200
    ids = [w["id"] for w in await resp.json()]
    assert ids == ["research-brief", "word-count"]
    assert resp.headers["X-Total-Count"] == "2"


async def test_list_workers_under_every_prefix(client):
    for prefix in ("", "/api", "/v1", "/api/v1"):
        resp = await client.get(f"{prefix}/workers?shape=list")
        assert resp.status == 200, prefix
        item = (await resp.json())[0]
        assert item["inputs"] is None  # the trimmed payload keeps the field, null
        full = (await (await client.get(f"{prefix}/workers")).json())[0]
        assert set(item) == set(full) and isinstance(full["inputs"], list)


async def test_create_worker_commits_and_shows(client, ws_path):
    before = commit_count(ws_path)
    resp = await client.post("/api/workers", json=worker_body())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["id"] == "hello-world"
    assert {f["path"] for f in body["files"]} == {"worker.yml", "run.py"}
    assert commit_count(ws_path) == before + 1
    assert (
        git(ws_path, "log", "-1", "--format=%s %an").strip()
        == "worker: create hello-world local-user"
    )
    assert git(ws_path, "status", "--porcelain") == ""


async def test_create_worker_existing_id_is_409_without_commit(client, ws_path):
    await client.post("/api/workers", json=worker_body())
    before = commit_count(ws_path)
    resp = await client.post("/api/workers", json=worker_body())
    assert resp.status == 409
    assert "already exists" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_create_worker_invalid_manifest_names_file_and_field(client, ws_path):
    before = commit_count(ws_path)
    body = worker_body()
    body["worker_yml"] = body["worker_yml"].replace("version: 1.0.0", "version: one")
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 400
    detail = (await resp.json())["detail"]
    assert detail.startswith("workers/hello-world/worker.yml:")
    assert "$.version" in detail
    assert commit_count(ws_path) == before


async def test_create_worker_missing_entry_file_is_400(client):
    body = {"worker_yml": WORKER_YML.format(name="no-entry", title="x")}
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 400
    assert "entry file 'run.py' is missing" in (await resp.json())["detail"]


async def test_create_worker_yaml_alias_bomb_is_400(client, ws_path):
    before = commit_count(ws_path)
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n' + WORKER_YML.format(
        name="bomb", title="b"
    )
    resp = await client.post("/api/workers", json={"worker_yml": bomb, "run_py": "x"})
    assert resp.status == 400
    assert "aliases" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_create_worker_malformed_json_is_400(client):
    resp = await client.post(
        "/api/workers", data=b'{"worker_yml": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "malformed JSON" in (await resp.json())["detail"]


async def test_create_worker_unknown_field_is_ignored(client):
    body = worker_body()
    body["bogus"] = 1  # the reference's clients send fields this server does not know
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 201, await resp.text()


async def test_create_worker_known_field_of_wrong_type_is_400(client, ws_path):
    before = commit_count(ws_path)
    body = worker_body()
    body["run_py"] = 7
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 400
    assert (await resp.json())[
        "detail"
    ] == "request body: Expected `str | null`, got `int` - at `$.run_py`"
    assert commit_count(ws_path) == before


async def test_create_worker_traversal_in_file_path_is_400(client, ws_path):
    before = commit_count(ws_path)
    body = worker_body()
    body["files"] = [{"path": "../../evil.py", "content": "x"}]
    resp = await client.post("/api/workers", json=body)
    assert resp.status == 400
    assert "'..'" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_get_unknown_worker_is_404(client):
    resp = await client.get("/api/workers/nope-nope")
    assert resp.status == 404
    assert await resp.json() == {"detail": "Worker not found", "code": "not_found"}


async def test_pause_resume_archive_restore_write_worker_yml(client, ws_path):
    await client.post("/api/workers", json=worker_body())
    resp = await client.post("/api/workers/hello-world/pause")
    assert (await resp.json())["paused"] is True
    text = (ws_path / "workers/hello-world/worker.yml").read_text()
    assert "paused: true" in text
    diff = git(ws_path, "show", "--format=", "--unified=0", "HEAD")
    assert diff.count("\n+") == 1 + 1  # the +++ header and one added line
    assert (await (await client.get("/api/workers?status=paused")).json())[0]["id"] == "hello-world"
    resp = await client.post("/api/workers/hello-world/resume")
    assert (await resp.json())["paused"] is False
    assert "paused" not in (ws_path / "workers/hello-world/worker.yml").read_text()
    await client.post("/api/workers/hello-world/archive")
    ids = [w["id"] for w in await (await client.get("/api/workers")).json()]
    assert "hello-world" not in ids
    resp = await client.post("/api/workers/hello-world/restore")
    assert (await resp.json())["status"] == "ready"
    assert git(ws_path, "status", "--porcelain") == ""


async def test_visibility_patch_and_bad_value(client, ws_path):
    resp = await client.patch("/api/workers/word-count/visibility", json={"visibility": "public"})
    assert (await resp.json())["visibility"] == "public"
    assert (
        git(ws_path, "log", "-1", "--format=%s").strip()
        == "worker word-count: set visibility to public"
    )
    before = commit_count(ws_path)
    resp = await client.patch("/api/workers/word-count/visibility", json={"visibility": "everyone"})
    assert resp.status == 400
    assert "$.visibility" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_noop_write_makes_no_commit(client, ws_path):
    await client.post("/api/workers/word-count/pause")
    before = commit_count(ws_path)
    await client.post("/api/workers/word-count/pause")
    assert commit_count(ws_path) == before


async def test_put_files_replaces_all_files_in_one_commit(client, ws_path):
    await client.post(
        "/api/workers",
        json={**worker_body(), "files": [{"path": "lib/helper.py", "content": "x=1"}]},
    )
    before = commit_count(ws_path)
    files = [
        {"path": "worker.yml", "content": WORKER_YML.format(name="hello-world", title="Hello 2")},
        {"path": "run.py", "content": "print('two')\n"},
    ]
    resp = await client.put("/api/workers/hello-world/files", json={"files": files})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["name"] == "Hello 2"
    assert commit_count(ws_path) == before + 1
    assert not (ws_path / "workers/hello-world/lib/helper.py").exists()
    assert git(ws_path, "status", "--porcelain") == ""


async def test_versions_and_rollback_remove_later_files(client, ws_path):
    await client.post("/api/workers", json=worker_body())
    first = (await (await client.get("/api/workers/hello-world/versions")).json())[0]["sha"]
    files = [
        {"path": "worker.yml", "content": WORKER_YML.format(name="hello-world", title="Hello 2")},
        {"path": "run.py", "content": "print('two')\n"},
        {"path": "extra.txt", "content": "later"},
    ]
    await client.put("/api/workers/hello-world/files", json={"files": files})
    versions = await (await client.get("/api/workers/hello-world/versions")).json()
    assert [v["message"] for v in versions] == [
        "worker hello-world: replace files",
        "worker: create hello-world",
    ]
    old = await (await client.get(f"/api/workers/hello-world/versions/{first}")).json()
    assert {f["path"] for f in old["files"]} == {"worker.yml", "run.py"}
    resp = await client.post(f"/api/workers/hello-world/rollback/{first}")
    assert resp.status == 200
    assert (await resp.json())["name"] == "Hello"
    assert not (ws_path / "workers/hello-world/extra.txt").exists()
    assert (
        git(ws_path, "log", "-1", "--format=%s").strip()
        == f"rollback: restore hello-world to {first}"
    )
    assert git(ws_path, "status", "--porcelain") == ""


async def test_rollback_to_sha_outside_history_is_404(client, ws_path):
    await client.post("/api/workers", json=worker_body())
    other = git(ws_path, "log", "--format=%h", "-1", "--", "workspace.md").strip()
    before = commit_count(ws_path)
    for sha in (other, "deadbeef", "zzzz", "0" * 40):
        resp = await client.post(f"/api/workers/hello-world/rollback/{sha}")
        assert resp.status == 404, sha
    assert commit_count(ws_path) == before


async def test_rollback_to_an_invalid_version_is_refused_naming_the_file(client, ws_path):
    """A version the worker cannot run from (here: its entry file missing, committed by hand)
    is listed but never restored: 400 naming the file, nothing committed."""
    def commit(message: str) -> None:
        git(ws_path, "-c", "user.name=x", "-c", "user.email=x@example.com", "commit", "-q",
            "-m", message)

    git(ws_path, "rm", "-q", "workers/word-count/run.py")
    commit("broken")
    broken = git(ws_path, "rev-parse", "--short=7", "HEAD").strip()
    git(ws_path, "checkout", "-q", "HEAD~1", "--", "workers/word-count/run.py")
    commit("fixed")
    before = commit_count(ws_path)
    resp = await client.post(f"/api/workers/word-count/rollback/{broken}")
    assert resp.status == 400, await resp.text()
    assert "run.py" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before
    assert (ws_path / "workers/word-count/run.py").is_file()


async def test_reads_never_write(client, ws_path):
    before = commit_count(ws_path)
    for url in ("/api/workers", "/api/workers/word-count", "/api/workers/word-count/versions",
                "/api/contexts", "/api/workspace", "/api/workspace/changelog"):
        assert (await client.get(url)).status == 200
    assert commit_count(ws_path) == before
    assert git(ws_path, "status", "--porcelain") == ""


async def test_delete_worker(client, ws_path):
    resp = await client.delete("/api/workers/word-count")
    assert resp.status == 200
    assert not (ws_path / "workers/word-count").exists()
    assert (await client.get("/api/workers/word-count")).status == 404
    assert git(ws_path, "status", "--porcelain") == ""


async def test_sample_input_and_bundle(client):
    assert (await (await client.get("/api/workers/word-count/sample-input")).json())[
        "min_length"
    ] == 1
    resp = await client.get("/api/workers/word-count/bundle.zip")
    assert resp.headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(await resp.read())).namelist()
    assert sorted(names) == ["word-count/run.py", "word-count/worker.yml"]


async def test_invalid_worker_on_disk_is_listed_with_error(client, ws_path):
    (ws_path / "workers/word-count/worker.yml").write_text("name: [unclosed\n")
    resp = await client.post("/api/workers/reload")
    body = await resp.json()
    assert body["status"] == "success" and body["workers_loaded"] == 2
    items = await (await client.get("/api/workers")).json()
    broken = next(w for w in items if w["id"] == "word-count")
    assert broken["status"] == "error"
    assert broken["error"].startswith("workers/word-count/worker.yml: invalid YAML")


async def test_legacy_top_level_inputs_are_lifted(client):
    yml = WORKER_YML.format(name="legacy-one", title="L").replace(
        "exec:\n  entry: run.py\n  runtime: python311\n  inputs:", "exec:\n  entry: run.py\ninputs:"
    )
    yml = yml.replace(
        "\n    - name: text\n      type: string\n      required: true",
        "\n  - name: text\n    type: string\n    required: true",
    )
    resp = await client.post("/api/workers", json={"worker_yml": yml, "run_py": "x"})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["inputs"][0]["name"] == "text"


async def test_create_worker_duplicate_json_keys_is_400(client, ws_path):
    before = commit_count(ws_path)
    body = b'{"worker_yml": "x", "worker_yml": "y"}'
    resp = await client.post(
        "/api/workers", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "duplicate key `worker_yml`" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_create_worker_deeply_nested_json_is_400(client):
    body = b'{"manifest": ' + b'{"a": ' * 50000 + b"1" + b"}" * 50000 + b"}"
    resp = await client.post(
        "/api/workers", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "nested too deeply" in (await resp.json())["detail"]


async def test_create_worker_wrong_content_type_is_415(client):
    resp = await client.post("/api/workers", data=b"<xml/>", headers={"Content-Type": "text/xml"})
    assert resp.status == 415
    assert "Content-Type" in (await resp.json())["detail"]


async def test_create_worker_secret_name_with_trailing_newline_is_400(client):
    yml = WORKER_YML.format(name="nl-secret", title="x").replace(
        "  inputs:", '  secrets: ["API_KEY\\n"]\n  inputs:')
    resp = await client.post("/api/workers", json={"worker_yml": yml, "run_py": "x"})
    assert resp.status == 400
    assert "$.exec.secrets[0]" in (await resp.json())["detail"]


async def _commit(app, rel: str, text: str) -> None:
    """Commit one file on main as a synced on-disk edit or a push would (no API involved)."""
    ws = app[MANAGER].get("default")
    await ws.writer.write(lambda repo: Changeset({rel: text.encode()}, f"edit {rel}"),
                          SYSTEM.signature)


async def test_listing_reads_workspace_files_once_and_sees_their_edits_at_once(client):
    for i in range(3):
        body = worker_body(f"needs-github-{i}")
        body["worker_yml"] += "connections:\n  - github\n"
        assert (await client.post("/api/workers", json=body)).status == 201
    connection_files.READS.clear()
    agent_setup.READS.clear()
    listed = {w["id"]: w for w in await (await client.get("/api/workers")).json()}
    # one read of each workspace-level file per page, however many workers declare connections
    # or are agents (the template's research-brief is one)
    assert connection_files.READS[CONNECTIONS_FILE] == 1
    assert agent_setup.READS[paths.WORKSPACE_YML] == 1
    assert listed["research-brief"]["status"] == "needs_setup"
    assert {listed[f"needs-github-{i}"]["status"] for i in range(3)} == {"missing_connection"}

    await _commit(client.server.app, CONNECTIONS_FILE,
                  "version: 1\nconnections:\n  - {id: conn_0123456789ab, label: github, "
                  "kind: app, app: github}\n")
    await _commit(client.server.app, paths.WORKSPACE_YML,
                  "name: default\nagent: {provider: gemini, model: x}\n")
    listed = {w["id"]: w for w in await (await client.get("/api/workers")).json()}
    assert {listed[f"needs-github-{i}"]["status"] for i in range(3)} == {"ready"}
    assert listed["needs-github-0"]["missing_connections"] == []
    assert "Invalid enum value 'gemini'" in listed["research-brief"]["error"]

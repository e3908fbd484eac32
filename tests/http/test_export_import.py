"""Workspace export/import bundles: round trips, never overwriting, and hostile archives."""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile

import aiohttp
import pytest

from floom_git.http.app import create_app
from floom_git.http.keys import MANAGER
from tests.conftest import AUTH, WORKER_YML, commit_count, git, worker_body

SECOND = {"x-workeros-workspace": "second"}


@pytest.fixture
async def admin(aiohttp_client, settings):
    app = create_app(settings.replace(shared_secret_role="admin"))
    return await aiohttp_client(app, headers=AUTH)


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are one of the hostile cases
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


async def _import(client, data: bytes, headers: dict | None = None):
    form = aiohttp.FormData()
    form.add_field(
        "bundle", io.BytesIO(data), filename="bundle.zip", content_type="application/zip"
    )
    return await client.post("/api/workspace/import", data=form, headers=headers)


async def _export(client, headers: dict | None = None) -> bytes:
    resp = await client.get("/api/workspace/export", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/zip"
    assert "workeros-workspace-template.zip" in resp.headers["Content-Disposition"]
    return await resp.read()


async def _populate(client) -> None:
    assert (await client.post("/api/workers", json=worker_body())).status == 201
    assert (await client.post("/api/contexts/notes", json={"description": "n"})).status == 201
    resp = await client.put("/api/contexts/notes/files/a/readme.md", data=b"# notes\n",
                            headers={"Content-Type": "text/markdown"})
    assert resp.status in (200, 201), await resp.text()
    for title, extra in (
        ("bound", {"asset_type": "worker", "asset_id": "hello-world"}),
        ("loose", {}),
    ):
        resp = await client.post(
            "/api/workspace/issues", json={"title": title, "body": "b", **extra}
        )
        assert resp.status == 201
    assert (
        await client.post("/api/workspace/issues/ISSUE-0001/comments", json={"body": "hi"})
    ).status == 201


async def test_export_workspace_bundle_layout_and_summary(admin):
    await _populate(admin)
    files = read_zip(await _export(admin))
    for name in (
        "workers/hello-world/worker.yml",
        "workers/hello-world/run.py",
        "workers/word-count/run.py",
        "contexts/notes/a/readme.md",
        "contexts/company/about.md",
        "workspace.md",
        "issues/ISSUE-0001.md",
        "issues/ISSUE-0001.comments.ndjson",
        "issues/ISSUE-0002.md",
        "workspace.json",
    ):
        assert name in files, name
    summary = json.loads(files["workspace.json"])
    assert summary["schema_version"] == 1 and summary["has_workspace_md"] is True
    assert summary["counts"] == {"workers": 3, "contexts": 2, "issues": 2}
    hello = next(w for w in summary["workers"] if w["id"] == "hello-world")
    assert hello == {"id": "hello-world", "name": "Hello", "trigger_type": "manual",
                     "required_secrets": [], "required_connections": [], "file_count": 2}
    assert {"name": "notes", "file_count": 1, "writeable": False} in summary["contexts"]


async def test_export_workspace_never_contains_secret_files(admin, ws_path):
    (ws_path / "workers/word-count/.env").write_text("API_KEY=hunter2\n")
    (ws_path / "contexts/company/server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    git(ws_path, "add", "-f", "workers/word-count/.env", "contexts/company/server.pem")
    git(ws_path, "commit", "-qm", "sneak secrets in")
    data = await _export(admin)
    assert not [n for n in read_zip(data) if n.endswith((".env", ".pem"))]
    assert b"hunter2" not in data and b"PRIVATE KEY" not in data


async def test_export_workspace_leaves_sensitive_context_out(admin, ws_path):
    resp = await admin.post("/api/contexts/payroll", json={"sensitive": True})
    assert resp.status == 201 and (await resp.json())["sensitive"] is True
    await admin.put("/api/contexts/payroll/files/salaries.csv", data=b"ada,100\n")
    marked = await admin.patch("/api/contexts/company/sensitive", json={"sensitive": True})
    assert (await marked.json())["sensitive"] is True
    assert (
        git(ws_path, "log", "-1", "--format=%s").strip() == "context company: set sensitive to true"
    )
    files = read_zip(await _export(admin))
    assert not [n for n in files if n.startswith(("contexts/payroll/", "contexts/company/"))]
    summary = json.loads(files["workspace.json"])
    assert summary["contexts"] == [] and summary["counts"]["contexts"] == 0
    assert {"type": "context", "id": "payroll", "reason": "sensitive context pack"} in summary[
        "skipped"
    ]
    unmarked = await admin.patch("/api/contexts/company/sensitive", json={"sensitive": False})
    assert (await unmarked.json())["sensitive"] is False
    assert "contexts/company/about.md" in read_zip(await _export(admin))


async def test_export_workspace_needs_admin(client):
    resp = await client.get("/api/workspace/export")
    assert resp.status == 403


async def test_import_bundle_round_trip_into_second_workspace(admin, settings, ws_path):
    await _populate(admin)
    bundle = await _export(admin)
    await admin.app[MANAGER].create("second")
    second = settings.workspaces_dir / "second"
    before = commit_count(second)
    resp = await _import(admin, bundle, SECOND)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["workers_imported"] == ["hello-world"]
    assert result["contexts_imported"] == ["notes"]
    assert result["issues_imported"] == ["ISSUE-0001", "ISSUE-0002"]
    assert result["id_remaps"] == {} and result["workspace_md_present"] is True
    assert {(s["type"], s["id"]) for s in result["skipped"]} == {
        ("worker", "research-brief"), ("worker", "word-count"), ("context", "company")}
    assert commit_count(second) == before + 1
    assert git(second, "log", "-1", "--format=%s").strip() == (
        "workspace: import bundle (1 worker(s), 1 context(s), 2 issue(s))")
    assert git(second, "status", "--porcelain") == ""
    for rel in ("workers/hello-world/worker.yml", "contexts/notes/a/readme.md",
                ".floom/issues/ISSUE-0001.md", ".floom/issues/ISSUE-0001.comments.ndjson"):
        assert (second / rel).read_bytes() == (ws_path / rel).read_bytes(), rel
    detail = await (await admin.get("/api/workspace/issues/ISSUE-0001", headers=SECOND)).json()
    assert detail["comment_count"] == 1 and detail["asset_id"] == "hello-world"
    assert (await admin.get("/api/workers/hello-world", headers=SECOND)).status == 200
    # The same bundle again changes nothing.
    again = await (await _import(admin, bundle, SECOND)).json()
    assert (
        again["sha"] is None and again["workers_imported"] == [] and again["issues_imported"] == []
    )
    assert commit_count(second) == before + 1


async def test_import_bundle_into_fresh_server_keeps_everything(
    admin, aiohttp_client, tmp_path, settings
):
    await _populate(admin)
    bundle = await _export(admin)
    fresh_settings = settings.replace(data_dir=tmp_path / "fresh", shared_secret_role="admin")
    fresh = await aiohttp_client(create_app(fresh_settings), headers=AUTH)
    resp = await _import(fresh, bundle)
    assert resp.status == 200, await resp.text()
    assert read_zip(await _export(fresh)).keys() == read_zip(bundle).keys()
    exported_again = read_zip(await _export(fresh))
    for name, data in read_zip(bundle).items():
        if name != "workspace.json":
            assert exported_again[name] == data, name


async def test_import_bundle_remaps_taken_worker_and_skips_taken_issue(admin, settings):
    await _populate(admin)
    bundle = await _export(admin)
    await admin.app[MANAGER].create("second")
    second = settings.workspaces_dir / "second"
    resp = await admin.post("/api/workers", json=worker_body(title="Different"), headers=SECOND)
    assert resp.status == 201
    resp = await admin.post("/api/workspace/issues", json={"title": "mine"}, headers=SECOND)
    assert (await resp.json())["id"] == "ISSUE-0001"
    result = await (await _import(admin, bundle, SECOND)).json()
    assert result["id_remaps"] == {"hello-world": "hello-world-2"}
    assert result["workers_imported"] == ["hello-world-2"]
    assert result["issues_imported"] == ["ISSUE-0002"]
    assert {"type": "issue", "id": "ISSUE-0001",
            "reason": "an issue with this id already exists"} in result["skipped"]
    assert "name: hello-world-2\n" in (second / "workers/hello-world-2/worker.yml").read_text()
    assert "title: Different" in (second / "workers/hello-world/worker.yml").read_text()
    mine = await (await admin.get("/api/workspace/issues/ISSUE-0001", headers=SECOND)).json()
    assert mine["title"] == "mine"
    detail = await (await admin.get("/api/workers/hello-world-2", headers=SECOND)).json()
    assert detail["status"] == "ready"


async def test_import_bundle_skips_bad_issue_files_and_secret_files(client, ws_path):
    yml = WORKER_YML.format(name="from-zip", title="Z").encode()
    bundle = make_zip([
        ("workers/from-zip/worker.yml", yml), ("workers/from-zip/run.py", b"print(1)\n"),
        ("workers/from-zip/.env", b"TOKEN=x\n"),
        ("issues/ISSUE-0005.md", b"---\nid: ISSUE-0005\ntitle: \xff\xfe\n---\n"),
        ("issues/ISSUE-0006.md", b"---\nid: ISSUE-0006\ntitle: ok\n---\n\nfine\n"),
        ("issues/ISSUE-0007.comments.ndjson", b'{"id": "cmt_1", "body": "x"}\n'),
        ("notes.txt", b"stray"),
    ])
    resp = await _import(client, bundle)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["workers_imported"] == ["from-zip"] and result["issues_imported"] == [
        "ISSUE-0006"
    ]
    reasons = {s["id"]: s["reason"] for s in result["skipped"]}
    assert "UTF-8" in reasons["ISSUE-0005"]
    assert reasons["ISSUE-0007"] == "comment log without its issue"
    assert reasons["workers/from-zip/.env"] == "secret-bearing file"
    assert reasons["notes.txt"] == "not part of a workspace bundle"
    assert not (ws_path / "workers/from-zip/.env").exists()
    assert not (ws_path / ".floom/issues/ISSUE-0005.md").exists()


def _symlink() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("workers/linky/worker.yml")
    info.external_attr = 0o120777 << 16
    return info


GOOD = [("workers/ok-worker/worker.yml", WORKER_YML.format(name="ok-worker", title="Ok").encode()),
        ("workers/ok-worker/run.py", b"print(1)\n")]


@pytest.mark.parametrize(
    "case,entries,status,detail",
    [
        ("zip-slip", [("../evil.txt", b"x")], 400, "'..'"),
        ("nested zip-slip", [("workers/../../evil.txt", b"x")], 400, "'..'"),
        ("absolute", [("/etc/cron.d/evil", b"x")], 400, "absolute path"),
        ("drive letter", [("C:/evil", b"x")], 400, "absolute path"),
        ("backslash", [("workers\\evil", b"x")], 400, "backslash"),
        ("dot git", [("workers/ok-worker/.git/config", b"x")], 400, ".git"),
        ("symlink", [(_symlink(), b"/etc/passwd")], 400, "symbolic link"),
        ("duplicate", [("workspace.md", b"a"), ("workspace.md", b"b")], 400, "twice"),
        ("bomb", [("contexts/c/zeros.txt", b"\0" * (1536 * 1024))], 413, "zip bomb"),
        (
            "too large",
            [(f"contexts/c/r{i}.bin", os.urandom(800 * 1024)) for i in range(3)],
            413,
            "more than",
        ),
        ("too many entries", [(f"contexts/c/f{i}.txt", b"x") for i in range(60)], 413, "entries"),
        (
            "bad manifest",
            GOOD + [("workers/bad-one/worker.yml", b"name: bad-one\n")],
            400,
            "bundle: workers/bad-one/worker.yml",
        ),
        (
            "manifest name mismatch",
            [("workers/odd-one/worker.yml", GOOD[0][1]), ("workers/odd-one/run.py", b"")],
            400,
            "must equal its folder name",
        ),
        ("bad worker folder", [("workers/Bad_Name/worker.yml", b"x")], 400, "workers/Bad_Name"),
    ],
)
async def test_import_hostile_bundle_is_refused_without_commit(
    aiohttp_client, settings, ws_path, case, entries, status, detail
):
    limited = settings.replace(import_max_bytes=2 * 1024 * 1024, import_max_entries=50)
    client = await aiohttp_client(create_app(limited), headers=AUTH)
    await client.get("/healthz")
    before = commit_count(ws_path)
    resp = await _import(client, make_zip(entries))
    assert resp.status == status, await resp.text()
    assert detail in (await resp.json())["detail"]
    assert commit_count(ws_path) == before
    assert not (ws_path / "workers/ok-worker").exists()
    assert git(ws_path, "status", "--porcelain") == ""


@pytest.mark.parametrize("body,ctype,detail", [
    (b"definitely not a zip", "application/zip", "not a ZIP"),
    (b"", "application/zip", "not a ZIP"),
    (b'{"a": 1}', "application/json", "multipart"),
])
async def test_import_non_zip_body_is_400(client, ws_path, body, ctype, detail):
    before = commit_count(ws_path)
    resp = await client.post("/api/workspace/import", data=body, headers={"Content-Type": ctype})
    assert resp.status == 400
    assert detail in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_import_multipart_without_bundle_field_is_400(client):
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.zip")
    resp = await client.post("/api/workspace/import", data=form)
    assert resp.status == 400 and "bundle" in (await resp.json())["detail"]

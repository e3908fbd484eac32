"""The API door keeps the rule a push and the disk sync keep (tests/compat/test_push_file_kinds.py,
tests/services/test_sync.py): no write puts a folder where the workspace reads a file, or a file
where it reads a folder. Refused with 400 naming the path; nothing committed, `git status` clean,
and the workspace keeps working. Real server, real repository."""

from __future__ import annotations

import io
import zipfile

import aiohttp
import pygit2
import pytest

from floom_git.errors import InvalidInput
from floom_git.http.app import create_app
from floom_git.http.keys import MANAGER
from floom_git.storage.repo import Changeset, signature
from tests.conftest import AUTH, WORKER_YML, git

MANIFEST = WORKER_YML.format(name="word-count", title="Word count")
NOT_A_FOLDER = "must be a file, not a folder"
NOT_A_FILE = "must be a folder, not a file"


def state(ws_path) -> tuple[str, str]:
    """What a refused write must leave alone: the refs, and a clean working tree."""
    return git(ws_path, "for-each-ref"), git(ws_path, "status", "--porcelain")


async def refused(resp: aiohttp.ClientResponse, ws_path, before, detail: str) -> None:
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["detail"] == detail
    assert state(ws_path) == before
    assert before[1] == ""


async def still_works(client, ws_path) -> None:
    resp = await client.put("/contexts/company/files/after.md", data=b"after\n",
                            headers={"Content-Type": "text/plain"})
    assert resp.status == 200, await resp.text()
    assert git(ws_path, "show", "main:contexts/company/after.md") == "after\n"
    assert git(ws_path, "status", "--porcelain") == ""


async def test_put_context_file_under_context_yml_is_400(client, ws_path):
    before = state(ws_path)
    resp = await client.put("/contexts/company/files/context.yml/x.md", data=b"x",
                            headers={"Content-Type": "text/plain"})
    await refused(resp, ws_path, before, f"contexts/company/context.yml: {NOT_A_FOLDER}")
    await still_works(client, ws_path)


@pytest.mark.parametrize("prefix, filename", [("", "context.yml/x.md"), ("context.yml", "x.md")])
async def test_context_upload_under_context_yml_is_400(client, ws_path, prefix, filename):
    before = state(ws_path)
    form = aiohttp.FormData()
    if prefix:
        form.add_field("path_prefix", prefix)
    form.add_field("file", b"fine", filename="fine.md")
    form.add_field("file", b"x", filename=filename)
    resp = await client.post("/contexts/company/upload", data=form)
    await refused(resp, ws_path, before, f"contexts/company/context.yml: {NOT_A_FOLDER}")
    assert not (ws_path / "contexts/company/fine.md").exists()
    await still_works(client, ws_path)


async def test_new_context_upload_under_context_yml_is_400(client, ws_path):
    """The pack does not exist yet: the upload would write context.yml and a folder of it."""
    before = state(ws_path)
    form = aiohttp.FormData()
    form.add_field("create_if_missing", "true")
    form.add_field("file", b"x", filename="context.yml/x.md")
    resp = await client.post("/contexts/fresh/upload", data=form)
    await refused(resp, ws_path, before, f"contexts/fresh/context.yml: {NOT_A_FOLDER}")


@pytest.mark.parametrize("url", ["/workers/word-count/files", "/workers/word-count"])
async def test_worker_file_under_worker_yml_is_400(client, ws_path, url):
    """Replacing the files (PUT .../files) and writing some over them (PUT /workers/{id})."""
    before = state(ws_path)
    files = [{"path": "worker.yml", "content": MANIFEST},
             {"path": "worker.yml/x.md", "content": "x"}, {"path": "run.py", "content": "x=1\n"}]
    resp = await client.put(url, json={"files": files})
    await refused(resp, ws_path, before, f"workers/word-count/worker.yml: {NOT_A_FOLDER}")
    assert git(ws_path, "cat-file", "-t", "main:workers/word-count/worker.yml") == "blob\n"
    await still_works(client, ws_path)


async def test_import_of_context_yml_folder_is_400(aiohttp_client, settings, ws_path):
    admin = await aiohttp_client(create_app(settings.replace(shared_secret_role="admin")),
                                 headers=AUTH)
    before = state(ws_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("contexts/brand-new/about.md", b"about\n")
        zf.writestr("contexts/brand-new/context.yml/x.md", b"x\n")
    form = aiohttp.FormData()
    form.add_field("bundle", io.BytesIO(buf.getvalue()), filename="b.zip",
                   content_type="application/zip")
    resp = await admin.post("/api/workspace/import", data=form)
    await refused(resp, ws_path, before, f"contexts/brand-new/context.yml: {NOT_A_FOLDER}")
    await still_works(admin, ws_path)


# Every write reaches main through WorkspaceRepo.commit: the rule holds there for any
# changeset, including the kinds no route builds today (a file where a folder is read).
@pytest.mark.parametrize("path, where, why", [
    ("workers/xyz", "workers/xyz", NOT_A_FILE),
    ("contexts/x", "contexts/x", NOT_A_FILE),
    ("workers", "workers", NOT_A_FILE),
    ("contexts", "contexts", NOT_A_FILE),
    (".floom", ".floom", NOT_A_FILE),
    (".floom/issues", ".floom/issues", NOT_A_FILE),
    (".floom/issues/ISSUE-0001.md/x", ".floom/issues/ISSUE-0001.md", NOT_A_FOLDER),
    (".floom/issues/ISSUE-0001.comments.ndjson/x", ".floom/issues/ISSUE-0001.comments.ndjson",
     NOT_A_FOLDER),
    ("workspace.yml/x", "workspace.yml", NOT_A_FOLDER),
    ("workspace.md/x", "workspace.md", NOT_A_FOLDER),
    (".floom/connections.yml/x", ".floom/connections.yml", NOT_A_FOLDER),
    ("workspace-tools.yml/x", "workspace-tools.yml", NOT_A_FOLDER),
])
async def test_any_write_of_the_wrong_kind_is_refused_at_the_commit(client, ws_path, path, where,
                                                                    why):
    ws = client.app[MANAGER].get("default")
    before = state(ws_path)
    with pytest.raises(InvalidInput) as caught:
        await ws.writer.write(lambda repo: Changeset({path: b"x\n"}, "wrong kind"),
                              signature("a", "a@example.com"))
    assert caught.value.message == f"{where}: {why}"
    assert state(ws_path) == before
    await still_works(client, ws_path)


@pytest.mark.parametrize("path", ["README.md", "notes/workers", "workers/word-count/notes.md",
                                  "contexts/company/docs/context.yml/x.md", "workers/.gitkeep",
                                  ".floom/notes.md", "docs/workspace.yml/x.md", "workers/README.md",
                                  "contexts/.gitkeep"])
async def test_writes_of_other_paths_land(client, ws_path, path):
    ws = client.app[MANAGER].get("default")
    result = await ws.writer.write(lambda repo: Changeset({path: b"x\n"}, f"add {path}"),
                                   signature("a", "a@example.com"))
    assert result.sha is not None
    assert git(ws_path, "show", f"main:{path}") == "x\n"
    assert isinstance(pygit2.Repository(str(ws_path)).revparse_single(f"main:{path}"), pygit2.Blob)

"""One path validator with git's own rules (ENGINEERING-NOTES §7.3) for every door into a
repository: names git refuses are 400 with a clear detail, never 500 and never committed. Also
the body rules of the write path: JSON routes refuse other content types (415) and a path whose
percent-decoding is not UTF-8 is 400."""

from __future__ import annotations

import io
import urllib.parse
import zipfile

import aiohttp
import pytest

from floom_git import paths
from floom_git.errors import InvalidInput
from tests.conftest import AUTH, commit_count, git

REFUSED = [".git", ".GIT", ".Git", ".git.", ".git ", ".git. .", ".git:alt", "git~1", "GIT~1",
           "git~1.", ".g\u200cit", ".gi\u200dt", "\u200e.git", ".git\u200f", ".g\u202ait",
           ".git\u206f", "\ufeff.git"]
ACCEPTED = [".gitx", "git", ".github", "git~2", "a.git", ".gitmodules", ".gitignore", "x\u200cy"]


@pytest.mark.parametrize("segment", REFUSED)
def test_clean_relpath_refuses_what_git_reads_as_dot_git(segment):
    with pytest.raises(InvalidInput, match="git"):
        paths.clean_relpath(f"docs/{segment}/config")


@pytest.mark.parametrize("segment", ACCEPTED)
def test_clean_relpath_accepts_names_git_accepts(segment):
    assert paths.clean_relpath(f"docs/{segment}") == f"docs/{segment}"


@pytest.mark.parametrize("name", [".gitmodules", ".GITMODULES", "gitmod~1", "GI7EBA~3",
                                  ".gitmodules. ", ".gitattributes", ".gitignore", ".mailmap",
                                  ".git\u200cmodules"])
def test_clean_relpath_refuses_gitmodules_as_symlink(name):
    paths.clean_relpath(name)  # a regular file of that name is fine
    with pytest.raises(InvalidInput):
        paths.clean_relpath(name, symlink=True)


def test_clean_relpath_refuses_invalid_utf8():
    bad = b"docs/\xff\xfe.txt".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidInput, match="UTF-8"):
        paths.clean_relpath(bad)


@pytest.mark.parametrize("segment", REFUSED)
async def test_put_context_file_with_refused_segment_is_400(client, ws_path, segment):
    before = commit_count(ws_path)
    quoted = urllib.parse.quote(f"{segment}/config", safe="/")
    resp = await client.put(f"/contexts/company/files/{quoted}", data=b"x",
                            headers={"Content-Type": "text/plain"})
    assert resp.status == 400, await resp.text()
    assert "git" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


@pytest.mark.parametrize("segment", [".git.", "GIT~1", ".g\u200cit"])
async def test_worker_files_with_refused_segment_is_400(client, ws_path, segment):
    before = commit_count(ws_path)
    body = {"files": [{"path": f"{segment}/hooks/post-checkout", "content": "#!/bin/sh\n"}]}
    resp = await client.put("/workers/word-count/files", json=body)
    assert resp.status == 400, await resp.text()
    assert "git" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


@pytest.mark.parametrize("segment", [".git.", "git~1", ".g\u200cit", ".git "])
async def test_import_with_refused_segment_is_400(aiohttp_client, settings, segment):
    from floom_git.http.app import create_app

    client = await aiohttp_client(create_app(settings.replace(shared_secret_role="admin")),
                                  headers=AUTH)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"contexts/c/{segment}/config", b"[core]\n")
    form = aiohttp.FormData()
    form.add_field("bundle", io.BytesIO(buf.getvalue()), filename="b.zip",
                   content_type="application/zip")
    resp = await client.post("/api/workspace/import", data=form)
    assert resp.status == 400, await resp.text()
    assert "git" in (await resp.json())["detail"]


async def test_context_path_not_utf8_after_percent_decoding_is_400(client, ws_path):
    before = commit_count(ws_path)
    resp = await client.put("/contexts/company/files/%FF%FE.txt", data=b"x",
                            headers={"Content-Type": "text/plain"})
    assert resp.status == 400, await resp.text()
    assert "UTF-8" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before
    assert "%FF" not in git(ws_path, "ls-tree", "-r", "--name-only", "main")


async def test_context_path_with_encoded_percent_is_a_literal_name(client, ws_path):
    resp = await client.put("/contexts/company/files/100%25.txt", data=b"x",
                            headers={"Content-Type": "text/plain"})
    assert resp.status == 200, await resp.text()
    assert (ws_path / "contexts/company/100%.txt").read_bytes() == b"x"


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/octet-stream", "text/html"])
@pytest.mark.parametrize("method, path", [("POST", "/workspace/issues"), ("POST", "/contexts/new"),
                                          ("PATCH", "/workers/word-count/visibility"),
                                          ("POST", "/workers/word-count/runs")])
async def test_json_route_with_other_content_type_is_415(client, ws_path, ctype, method, path):
    before = commit_count(ws_path)
    resp = await client.request(method, path, data=b'{"content": "x", "title": "t"}',
                                headers={"Content-Type": ctype})
    assert resp.status == 415, await resp.text()
    assert "application/json" in (await resp.json())["detail"]
    assert commit_count(ws_path) == before


async def test_json_route_with_json_content_types_is_accepted(client):
    for ctype in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        resp = await client.post("/workspace/issues", data=b'{"title": "t"}',
                                 headers={"Content-Type": ctype})
        assert resp.status == 201, (ctype, await resp.text())

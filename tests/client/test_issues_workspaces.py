"""`issues list|show|create|comment|close` and `workspaces list|switch|export|import` against the
real server, checked through the API and the workspace's git history."""

from __future__ import annotations

import io
import zipfile

import pytest

from floom_git.http.keys import IDENTITY
from tests.client.conftest import Cli, member_token
from tests.conftest import AUTH, git, uid


@pytest.fixture
async def api(aiohttp_client, server):
    return await aiohttp_client(server, headers=AUTH)


async def test_issue_lifecycle(cli, api, ws_path, tmp_path):
    (tmp_path / "body.md").write_text("Words with hyphens count as two.\n")
    created = await cli(
        "issues",
        "create",
        "--title",
        "Hyphens",
        "--body-file",
        str(tmp_path / "body.md"),
        "-l",
        "bug",
        "-l",
        "text",
        "--worker",
        "word-count",
        "--json",
    )
    assert created.code == 0, created.err
    issue = created.json()
    assert issue["id"] == "ISSUE-0001" and issue["labels"] == ["bug", "text"]
    assert (issue["asset_type"], issue["asset_id"]) == ("worker", "word-count")
    assert git(ws_path, "log", "-1", "--format=%s").startswith("issues: create ISSUE-0001")

    listed = await cli("issues", "list")
    assert listed.code == 0 and "ISSUE-0001" in listed.out and "worker:word-count" in listed.out
    assert (await cli("issues", "list", "--worker", "word-count", "--json")).json()["total"] == 1

    commented = await cli("issues", "comment", "ISSUE-0001", "-m", "Confirmed on 1.0.0")
    assert commented.code == 0, commented.err
    shown = await cli("issues", "show", "ISSUE-0001")
    assert "Words with hyphens count as two." in shown.out and "Confirmed on 1.0.0" in shown.out

    closed = await cli("issues", "close", "ISSUE-0001", "-m", "fixed in 1.0.1")
    assert closed.code == 0 and "closed ISSUE-0001" in closed.err
    detail = (await cli("issues", "show", "ISSUE-0001", "--json")).json()
    assert detail["status"] == "closed" and [c["body"] for c in detail["comments"]] == [
        "Confirmed on 1.0.0", "fixed in 1.0.1"]
    assert (await cli("issues", "list", "--json")).json()["issues"] == []
    assert len((await cli("issues", "list", "--status", "all", "--json")).json()["issues"]) == 1


async def test_issue_create_from_stdin_bound_to_a_run(cli):
    result = await cli(
        "issues",
        "create",
        "-t",
        "From a run",
        "--body-file",
        "-",
        "--run",
        "run_abc",
        "--json",
        stdin="seen in the logs\n",
    )
    assert result.code == 0, result.err
    assert (
        result.json()["body"].strip() == "seen in the logs" and result.json()["asset_type"] == "run"
    )


@pytest.mark.parametrize("command", [("issues", "show", "ISSUE-0042"),
                                     ("issues", "comment", "ISSUE-0042", "-m", "hi"),
                                     ("issues", "close", "ISSUE-0042")])
async def test_unknown_issue_is_named(cli, command):
    result = await cli(*command)
    assert result.code == 1 and result.err == "error: issue 'ISSUE-0042' not found\n"


async def test_issue_create_without_title_is_a_usage_error(cli):
    assert (await cli("issues", "create")).code == 2


async def test_workspaces_list_and_switch(cli, api, server, config_home):
    made = await api.post("/api/workspaces", json={"id": "second", "name": "Second"})
    assert made.status == 201, await made.text()
    listed = await cli("workspaces", "list", "--json")
    assert listed.code == 0
    assert [w["id"] for w in listed.json()["workspaces"]] == ["default"]  # not a member of second
    assert listed.json()["current"] == "default"

    refused = await cli("workspaces", "switch", "second")
    assert refused.code == 1 and refused.err.startswith("error: ")
    identity = server.app[IDENTITY]
    identity.members.add(uid(server.app, "second"), identity.users.find("ada").id, "member")

    switched = await cli("workspaces", "switch", "second")
    assert switched.code == 0, switched.err
    assert "Now acting in workspace second" in switched.err
    human = await cli("workspaces", "list")
    assert "*  second" in human.out.replace("\u00a0", " ")
    assert (await cli("whoami", "--json")).json()["workspace"]["id"] == "second"
    assert "word-count" in (await cli("workers", "list")).out  # `second` starts from the template
    # --workspace and FLOOM_WORKSPACE win over the stored choice
    assert (await cli("whoami", "--json", "-w", "default")).json()["workspace"]["id"] == "default"
    env = {"FLOOM_WORKSPACE": "default"}
    assert (await cli("whoami", "--json", env=env)).json()["workspace"]["id"] == "default"
    stored = (config_home / "floom-git" / "config.json").read_text()
    assert '"workspace": "second"' in stored


async def test_switch_to_unknown_workspace_is_named(cli):
    result = await cli("workspaces", "switch", "nope")
    assert result.code == 1 and result.err.startswith("error: ")
    assert "nope" in result.err


async def test_workspace_export_then_import_into_another(cli, aiohttp_client, tmp_path, server,
                                                          base_env):
    root = member_token(server, "root", "admin")
    admin = Cli({**base_env, "FLOOM_TOKEN": root})
    bundle = tmp_path / "ws.zip"
    exported = await admin("workspaces", "export", "-o", str(bundle))
    assert exported.code == 0, exported.err
    assert f"Wrote {bundle}" in exported.err
    names = zipfile.ZipFile(io.BytesIO(bundle.read_bytes())).namelist()
    assert any(n.startswith("workers/word-count/") for n in names)

    denied = await cli("workspaces", "export", "-o", str(tmp_path / "x.zip"))  # ada is a member
    assert denied.code == 1 and "(HTTP 403)" in denied.err and not (tmp_path / "x.zip").exists()

    as_root = await aiohttp_client(server, headers={"x-floom-token": root})
    made = await as_root.post("/api/workspaces", json={"id": "copy"})
    assert made.status == 201, await made.text()  # root owns it
    imported = await admin("workspaces", "import", str(bundle), "-w", "copy", "--json")
    assert imported.code == 0, imported.err
    assert "word-count" in [s["id"] for s in imported.json()["skipped"]]  # the template has it
    missing = await admin("workspaces", "import", str(tmp_path / "none.zip"))
    assert missing.code == 1 and "none.zip" in missing.err

"""The write path under people's own edits: an API write and a save on disk racing for the same
file lose neither (last save wins, history holds both), and a write whose commit landed never
answers 5xx."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

from floom_git.http.keys import MANAGER
from tests.conftest import git


def save_like_an_editor(path: Path, text: str, delay: float) -> None:
    import time

    time.sleep(delay)
    tmp = path.with_name(".workspace.md.swp-save")
    tmp.write_text(text)
    os.replace(tmp, path)


def versions(ws_path: Path, rel: str) -> list[str]:
    shas = git(ws_path, "log", "--format=%H", "main", "--", rel).split()
    return [git(ws_path, "show", f"{sha}:{rel}") for sha in shas]


async def reconcile(client) -> None:
    for _ in range(20):
        resp = await client.post("/workers/reload")
        if resp.status == 200:
            return
        assert resp.status == 409, await resp.text()  # saved again meanwhile: once more
    raise AssertionError("reload never settled")


async def test_api_write_racing_disk_save_loses_neither(client, ws_path):
    rng = random.Random(1)
    for i in range(16):
        edit, api = f"# saved on disk {i}\n", f"# written by the API {i}\n"
        saver = asyncio.to_thread(save_like_an_editor, ws_path / "workspace.md", edit,
                                  rng.uniform(0, 0.02))
        resp, _ = await asyncio.gather(client.put("/workspace", json={"content": api}), saver)
        assert resp.status in (200, 409), await resp.text()
        await reconcile(client)
        history = versions(ws_path, "workspace.md")
        assert history[0] == edit, f"try {i}: the saved edit is not the last version"
        if resp.status == 200:
            assert api in history, f"try {i}: the acknowledged write is not in history"
        assert git(ws_path, "status", "--porcelain") == ""


async def test_api_write_landed_while_index_locked_answers_200(client, ws_path):
    lock = ws_path / ".git" / "index.lock"
    lock.write_bytes(b"")  # a person's git command holds the index
    resp = await client.put("/workspace", json={"content": "# while locked\n"})
    assert resp.status == 200, await resp.text()
    assert git(ws_path, "show", "main:workspace.md") == "# while locked\n"
    lock.unlink()
    resp = await client.put("/workspace", json={"content": "# after\n"})
    assert resp.status == 200, await resp.text()
    assert git(ws_path, "status", "--porcelain") == ""
    assert (ws_path / "workspace.md").read_text() == "# after\n"


async def test_api_write_while_working_tree_cannot_follow_answers_503(client, ws_path):
    ws = client.server.app[MANAGER].get("default")
    lock = ws_path / ".git" / "index.lock"
    lock.write_bytes(b"")
    first = await client.put("/workspace", json={"content": "# landed\n"})
    assert first.status == 200  # landed; its working-tree sync waits in the journal
    second = await client.put("/workspace", json={"content": "# refused\n"})
    assert second.status == 503
    assert "working tree" in (await second.json())["detail"]
    assert git(ws_path, "show", "main:workspace.md") == "# landed\n"  # nothing else moved
    lock.unlink()
    assert (await client.put("/workspace", json={"content": "# again\n"})).status == 200
    assert git(ws_path, "status", "--porcelain") == ""
    assert ws.writer.commits >= 2

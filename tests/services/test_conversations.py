"""The conversation store on a real workspace repository: changes are durable in the spool before
they are committed, grouped into one commit on floom/conversations, each message committed once,
and a crash before the commit loses nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time

import msgspec
import pytest

from floom_git.errors import NotFound
from floom_git.http.app import create_app
from floom_git.schemas.conversation import ChatMessage, Conversation
from floom_git.services.actor import SYSTEM, Actor
from floom_git.services.conversations import ConversationStore
from floom_git.services.workspaces import WorkspaceManager
from tests.conftest import git
from tests.http.test_runs import wait_for

ANN = Actor("usr_ann", "ann", "ann@example.com", role="member")
BOB = Actor("usr_bob", "bob", "bob@example.com", role="member")
BOSS = Actor("usr_boss", "boss", "boss@example.com", role="admin")


@pytest.fixture
async def workspace(settings):
    manager = WorkspaceManager(settings)
    manager.open_all()
    return await manager.create("default")


def conversation(cid: str, owner: Actor = ANN) -> Conversation:
    return Conversation(
        id=cid,
        title="t",
        created_by=owner.user_id,
        created_at="2026-05-01T10:00:00.000Z",
        updated_at="2026-05-01T10:00:00.000Z",
    )


def message(n: int) -> ChatMessage:
    return ChatMessage(id=f"msg_{n:012x}", role="user", content=f"hello {n}",
                       created_at=f"2026-05-01T10:00:0{n}.000Z")


async def test_conversation_store_groups_changes_into_one_commit(workspace):
    store = await ConversationStore(workspace).ready()
    first, second = conversation("conv_000000000001"), conversation("conv_000000000002")
    for c in (first, second):
        store.put(c)
        store.append(c, message(1))
    store.append(first, message(2))
    await store.flush()
    log = git(workspace.path, "log", "--format=%s", "floom/conversations").splitlines()
    assert log == ["conversations: record 2 conversations"]
    shown = git(workspace.path, "show", "floom/conversations:conversations/conv_000000000001/"
                                        "messages.ndjson")
    assert [json.loads(x)["content"] for x in shown.splitlines()] == ["hello 1", "hello 2"]
    meta = json.loads(git(workspace.path, "show", "floom/conversations:conversations/"
                                                  "conv_000000000001/conversation.json"))
    assert meta["message_count"] == 2
    assert not list(store.spool.glob("*"))  # committed: the spool copy is gone
    await store.close()


async def test_a_message_appended_while_a_commit_is_built_waits_for_the_next_commit(workspace):
    """Each commit's conversation.json counts exactly the messages that commit holds."""
    store = await ConversationStore(workspace).ready()
    c = conversation("conv_000000000005")
    store.put(c)
    store.append(c, message(1))
    gate = threading.Event()

    def hold(_repo):  # the writer is busy with another write...
        gate.wait(60)

    held = asyncio.create_task(workspace.writer.write(hold, SYSTEM.signature))
    flushing = asyncio.create_task(store.flush())
    while not store._flush_lock.locked():  # ...when the flush takes its snapshot
        await asyncio.sleep(0)
    store.append(c, message(2))  # appended before the commit is built
    gate.set()
    await held
    await flushing

    def committed() -> tuple[int, int]:
        base = "floom/conversations:conversations/conv_000000000005"
        meta = json.loads(git(workspace.path, "show", f"{base}/conversation.json"))
        return meta["message_count"], len(git(workspace.path, "show",
                                              f"{base}/messages.ndjson").splitlines())

    assert committed() == (1, 1)
    await store.flush()
    assert committed() == (2, 2)
    await store.close()


async def test_conversation_store_spool_survives_a_crash_before_commit(workspace):
    store = await ConversationStore(workspace).ready()
    c = conversation("conv_000000000003")
    store.put(c)
    store.append(c, message(1))
    await store.flush()
    store.append(c, message(2))  # acknowledged: durable in the spool, not committed...
    store.commits.cancel()  # ...when the process dies
    again = await ConversationStore(workspace).ready()
    assert again.index["conv_000000000003"].message_count == 2
    assert [m.content for m in again.messages("conv_000000000003")] == ["hello 1", "hello 2"]
    # A crash after a commit but before the spool was cleaned leaves a committed line behind.
    pending = again.spool / "conv_000000000003" / "append" / "messages.ndjson"
    committed_line = msgspec.json.encode(message(1)) + b"\n"
    pending.write_bytes(committed_line + pending.read_bytes())
    await again.flush()
    shown = git(workspace.path, "show", "floom/conversations:conversations/conv_000000000003/"
                                        "messages.ndjson")
    assert [json.loads(x)["content"] for x in shown.splitlines()] == ["hello 1", "hello 2"]
    await again.close()


async def test_conversation_store_shows_each_person_their_own(workspace):
    store = await ConversationStore(workspace).ready()
    store.put(conversation("conv_00000000000a", ANN))
    store.put(conversation("conv_00000000000b", BOB))
    assert [c.id for c in store.visible_to(ANN)] == ["conv_00000000000a"]
    assert [c.id for c in store.visible_to(ANN, everyone=True)] == ["conv_00000000000a"]
    assert len(store.visible_to(BOSS, everyone=True)) == 2
    with pytest.raises(NotFound):
        store.get("conv_00000000000b", ANN)
    assert store.get("conv_00000000000b", BOSS).created_by == BOB.user_id
    await store.close()


async def test_conversations_left_in_the_spool_are_committed_at_start_up(aiohttp_client, settings,
                                                                         workspace):
    store = await ConversationStore(workspace).ready()
    c = conversation("conv_00000000000c")
    store.put(c)
    store.append(c, message(1))
    store.commits.cancel()  # the server dies before committing
    client = await aiohttp_client(create_app(settings))

    async def committed() -> bool:
        try:
            git(workspace.path, "show", "floom/conversations:conversations/conv_00000000000c/"
                                        "messages.ndjson")
        except subprocess.CalledProcessError:
            return False
        return True

    await wait_for(committed, "the spooled conversation committed")
    await client.close()


async def test_messages_read_while_the_spool_is_committed_are_each_shown_once(workspace):
    """A reader in another thread never fails, nor sees a message twice, nor misses one that
    was acknowledged before it read, while the spool's lines are committed and dropped."""
    store = await ConversationStore(workspace).ready()
    c = conversation("conv_000000000009")
    store.put(c)
    stop = threading.Event()
    acknowledged = [0]  # messages appended (durable) so far
    seen: list[tuple[int, list[str]]] = []
    failures: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            before = acknowledged[0]
            try:
                seen.append((before, [m.id for m in store.messages(c.id)]))
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                failures.append(exc)
                return
            time.sleep(0.0005)  # let the loop and the writer have the GIL too

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 61):
            store.append(c, message(n))
            acknowledged[0] = n
            if n % 3 == 0:
                await store.flush()
            await asyncio.sleep(0)
    finally:
        stop.set()
        reader.join(30)
    assert failures == []
    assert len(seen) > 0
    for before, ids in seen:
        assert ids == [f"msg_{n:012x}" for n in range(1, len(ids) + 1)]  # once each, in order
        assert len(ids) >= before  # nothing acknowledged before the read is missing
    await store.close()

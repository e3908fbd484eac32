"""Conversations with the workspace agent, one store per workspace, written like run records: each
change is first durable in the spool (`<spool>/<ws uid>/conversations/<id>/conversation.json`,
fsync'd; messages appended fsync'd to `append/messages.ndjson`), then committed in groups onto
the server-owned branch floom/conversations (`conversations/<id>/conversation.json` and
`messages.ndjson`), after which the spool copy goes. A conversation is its creator's: others get
NotFound, the workspace's admins may list and read every one."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass

import msgspec

from floom_git.errors import NotFound
from floom_git.schemas.conversation import ChatMessage, Conversation
from floom_git.services.actor import SYSTEM, Actor
from floom_git.services.run_records import Owner
from floom_git.storage.repo import Change, Changeset, WorkspaceRepo
from floom_git.storage.spool import (
    CommitTimer,
    appended_sizes,
    committed_and_spooled,
    drop_prefix,
    fsync_append,
    fsync_write,
    read_prefix,
    unapplied,
)

log = logging.getLogger("floom_git.conversations")
BRANCH = "refs/heads/floom/conversations"
ROOT = "conversations"
META = "conversation.json"
MESSAGES = "messages.ndjson"
APPEND = "append"
NOT_FOUND = "Conversation not found"
_decode_meta = msgspec.json.Decoder(Conversation)
_decode_message = msgspec.json.Decoder(ChatMessage)


def _encode(conversation: Conversation) -> bytes:
    return msgspec.json.format(msgspec.json.encode(conversation), indent=2) + b"\n"


@dataclass
class _Snapshot:
    version: int
    data: bytes
    appended: int  # bytes of spooled messages the meta counts (the commit takes no more)


class ConversationStore:
    """The conversations of one workspace. Every workspace has one, as `Workspace.conversations`
    (made with it; loaded from the branch and the spool on first use)."""

    def __init__(self, ws: Owner) -> None:
        self.ws = ws
        self.spool = ws.settings.spool_dir / ws.uid / ROOT
        self.index: dict[str, Conversation] = {}
        self._versions: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._load_lock = asyncio.Lock()
        self.loaded = False
        self.commits = CommitTimer(ws.settings.run_commit_delay, self.flush,
                                   lambda: bool(self._dirty), f"conversations of {ws.id}")

    # -- start-up -----------------------------------------------------------------------------
    async def ready(self) -> ConversationStore:
        """Loaded from the branch and the spool (once, off the event loop)."""
        if not self.loaded:
            async with self._load_lock:
                if not self.loaded:
                    self.index = await asyncio.to_thread(self._load)
                    self.loaded = True
                    if self._dirty:
                        self.commits.schedule()
        return self

    def _load(self) -> dict[str, Conversation]:
        repo = self.ws.repo
        found: dict[str, Conversation] = {}
        for rel, blob in repo.files_at(repo.tip(BRANCH), ROOT).items():
            if rel.endswith("/" + META):
                try:
                    found[rel.split("/")[0]] = _decode_meta.decode(blob.data)
                except msgspec.DecodeError:
                    log.error("unreadable %s/%s in workspace %s", ROOT, rel, self.ws.id)
        if self.spool.is_dir():
            for child in sorted(self.spool.iterdir()):
                meta = child / META
                if meta.is_file():
                    try:
                        found[child.name] = _decode_meta.decode(meta.read_bytes())
                    except msgspec.DecodeError:
                        log.error("unreadable spool file %s; left in place", meta)
                        continue
                if meta.is_file() or (child / APPEND).is_dir():
                    self._dirty.add(child.name)  # acknowledged, not committed yet
                    self._versions[child.name] = 1
        return found

    # -- reads --------------------------------------------------------------------------------
    def get(self, conversation_id: str, actor: Actor) -> Conversation:
        """The conversation if `actor` may see it; NotFound otherwise (also when it is someone
        else's, so nobody learns which ids exist)."""
        found = self.index.get(conversation_id)
        if found is None or not (found.created_by == actor.user_id or actor.can("admin")):
            raise NotFound(NOT_FOUND)
        return found

    def visible_to(self, actor: Actor, *, everyone: bool = False) -> list[Conversation]:
        """The actor's conversations (every one with `everyone`, for admins), newest first."""
        mine = [c for c in self.index.values()
                if (everyone and actor.can("admin")) or c.created_by == actor.user_id]
        return sorted(mine, key=lambda c: (c.updated_at, c.id), reverse=True)

    def messages(self, conversation_id: str) -> list[ChatMessage]:
        """Committed messages followed by those still in the spool (blocking git read)."""
        data = committed_and_spooled(self.ws.repo, BRANCH, f"{ROOT}/{conversation_id}/{MESSAGES}",
                                     self.spool / conversation_id / APPEND / MESSAGES) or b""
        out = []
        for line in data.splitlines():
            if line.strip():
                try:
                    out.append(_decode_message.decode(line))
                except msgspec.DecodeError:
                    continue
        return out

    async def read_messages(self, conversation_id: str) -> list[ChatMessage]:
        """`messages`, read off the event loop."""
        return await asyncio.to_thread(self.messages, conversation_id)

    # -- writes -------------------------------------------------------------------------------
    def put(self, conversation: Conversation) -> None:
        """Make `conversation` current: durable in the spool on return, committed soon."""
        fsync_write(self.spool / conversation.id / META, _encode(conversation))
        self.index[conversation.id] = conversation
        self._changed(conversation.id)

    def append(self, conversation: Conversation, message: ChatMessage) -> None:
        """Add a message (durable on return) and count it on the conversation."""
        fsync_append(self.spool / conversation.id / APPEND / MESSAGES, msgspec.json.encode(message))
        conversation.message_count += 1
        conversation.updated_at = message.created_at
        self.put(conversation)

    def _changed(self, conversation_id: str) -> None:
        self._versions[conversation_id] = self._versions.get(conversation_id, 0) + 1
        self._dirty.add(conversation_id)
        self.commits.schedule()

    # -- commits ------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Commit every changed conversation now (one commit), then drop what the spool no
        longer needs; lines appended meanwhile stay for the next commit."""
        async with self._flush_lock:
            snaps = {cid: _Snapshot(self._versions.get(cid, 0), _encode(self.index[cid]),
                                    appended_sizes(self.spool / cid / APPEND).get(MESSAGES, 0))
                     for cid in sorted(self._dirty) if cid in self.index}
            if not snaps:
                return
            consumed: dict[str, int] = {}

            def build(repo: WorkspaceRepo) -> Changeset:
                changes: dict[str, Change] = {}
                tip = repo.tip(BRANCH)
                for cid, snap in snaps.items():
                    base = f"{ROOT}/{cid}"
                    changes[f"{base}/{META}"] = snap.data
                    pending = self.spool / cid / APPEND / MESSAGES
                    if snap.appended:  # what was appended after the snapshot waits
                        data = read_prefix(pending, snap.appended)
                        consumed[cid] = len(data)
                        have = repo.read_blob(tip, f"{base}/{MESSAGES}") or b""
                        fresh = unapplied(have, data)
                        if fresh:
                            changes[f"{base}/{MESSAGES}"] = have + fresh
                what = next(iter(snaps)) if len(snaps) == 1 else f"{len(snaps)} conversations"
                return Changeset(changes, f"conversations: record {what}")

            await self.ws.writer.write(build, SYSTEM.signature, ref=BRANCH, check_worktree=False)
            for cid, size in consumed.items():
                drop_prefix(self.spool / cid / APPEND / MESSAGES, size)
            for cid, snap in snaps.items():
                if self._versions.get(cid) != snap.version:
                    continue  # changed while committing: the next commit takes it
                self._dirty.discard(cid)
                folder = self.spool / cid
                (folder / META).unlink(missing_ok=True)
                if not any((folder / APPEND).glob("*")):
                    shutil.rmtree(folder, ignore_errors=True)

    async def close(self) -> None:
        """At shutdown: commit what is spooled (what fails stays in the spool for next time)."""
        await self.commits.close()
        try:
            await self.flush()
        except Exception:
            log.exception("final commit of the conversations of %s failed; the spool keeps them",
                          self.ws.id)

    def drop(self) -> None:
        """The workspace is being deleted: plan no more commits (its spool goes with it)."""
        self.commits.cancel()

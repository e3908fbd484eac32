"""The workspace agent: POST /chat streams one answer over SSE (conversation, text_delta,
tool_call_start, tool_call, provider_retry, message, done); GET /conversations and
/conversations/{id} read the caller's conversations from floom/conversations. `lifetime`
finishes answers still running and commits spooled conversations at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web
from aiohttp_sse import sse_response

from floom_git.agents.loop import Limits
from floom_git.agents.turn import RetryPolicy
from floom_git.http import wire
from floom_git.http.handlers.common import actor, settings
from floom_git.http.handlers.runs import attached
from floom_git.http.keys import ANSWERS, ENGINE, MANAGER, SECRETS
from floom_git.runtime import chat as chat_runtime
from floom_git.schemas.conversation import (
    ChatRequest,
    Conversation,
    ConversationDetail,
    ConversationOut,
)
from floom_git.services import agent_setup
from floom_git.services.workspaces import Workspace

log = logging.getLogger("floom_git.chat")
DONE = object()


async def forget(ws: Workspace) -> None:
    """Drop a deleted workspace's conversation spool."""
    ws.conversations.drop()


async def lifetime(app: web.Application) -> AsyncIterator[None]:
    """Commit what a crash left in the spools at start-up; at shutdown stop the answers still
    running and commit the spooled conversations (before the run engine stops)."""
    for ws in app[MANAGER].all():  # conversations a crash left in the spool get committed now
        store = ws.conversations
        if store.spool.is_dir():
            await store.ready()
    yield
    running: set[asyncio.Task[None]] = app[ANSWERS]
    answers = list(running)
    for task in answers:
        task.cancel()
    await asyncio.gather(*answers, return_exceptions=True)
    for ws in app[MANAGER].all():
        await ws.conversations.close()


def _out(c: Conversation) -> ConversationOut:
    return ConversationOut(id=c.id, title=c.title, created_by=c.created_by,
                           created_at=c.created_at, updated_at=c.updated_at,
                           message_count=c.message_count)


async def chat(request: web.Request) -> web.StreamResponse:
    ws = await attached(request)
    cfg = settings(request)
    who = actor(request)
    body = await wire.decode(request, ChatRequest, cfg.max_json_bytes)
    secrets = request.app[SECRETS]
    config = await agent_setup.workspace_agent(
        ws, lambda name: secrets.values(ws.uid, [name]).get(name))
    store = await ws.conversations.ready()
    conversation = chat_runtime.start(store, who, body.message, body.conversation_id)
    history = await store.read_messages(conversation.id)
    events: asyncio.Queue[Any] = asyncio.Queue()

    async def run() -> None:
        try:
            await chat_runtime.answer(
                ws, who, store, conversation, body.message, config=config,
                prices=request.app[ENGINE].agents.prices,
                limits=Limits(timeout_s=cfg.chat_timeout_seconds),
                policy=RetryPolicy(stall_timeout=cfg.agent_stall_seconds),
                emit=events.put, history=history)
        except Exception as exc:
            log.exception("chat answer in workspace %s failed", ws.id)
            await events.put({"type": "error", "detail": f"{type(exc).__name__}: {exc}"})
        finally:
            await events.put(DONE)

    # The answer is its own task: a client that goes away does not cut it short, so the
    # conversation always holds both the question and the answer.
    task = asyncio.get_running_loop().create_task(run())
    request.app[ANSWERS].add(task)
    task.add_done_callback(request.app[ANSWERS].discard)
    async with sse_response(request, ping_interval=cfg.sse_keepalive_seconds,
                            allow_all_methods=True) as resp:
        while True:
            item = await events.get()
            if item is DONE:
                item = {"type": "done", "conversation_id": conversation.id}
            await resp.send(msgspec.json.encode(item).decode())
            if item.get("type") == "done":
                break
    return resp


async def list_conversations(request: web.Request) -> web.Response:
    ws = await attached(request)
    store = await ws.conversations.ready()
    everyone = bool(wire.q_bool(request, "all"))
    found = store.visible_to(actor(request), everyone=everyone)
    limit, offset = wire.q_limit(request, 50, 500), wire.q_int(request, "offset", 0, 0)
    return wire.json([_out(c) for c in found[offset:offset + limit]],
                     headers={"X-Total-Count": str(len(found))})


async def get_conversation(request: web.Request) -> web.Response:
    ws = await attached(request)
    store = await ws.conversations.ready()
    conversation = store.get(request.match_info["id"], actor(request))
    messages = await store.read_messages(conversation.id)
    return wire.json(ConversationDetail(**{f: getattr(_out(conversation), f)
                                           for f in ConversationOut.__struct_fields__},
                                        messages=messages))

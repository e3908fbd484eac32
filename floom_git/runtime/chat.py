"""One answer of the workspace agent: the person's message stored in its conversation, the tool
loop of floom_git.agents run with workspace.md as instructions and the chat tools acting as that
person, each step handed to `emit` as it happens (text deltas, tool calls, the final message),
and the answer stored with its tool calls, usage and cost. The provider key is redacted from
everything emitted and stored."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from floom_git.agents.config import AgentConfig, make_provider
from floom_git.agents.events import Event
from floom_git.agents.loop import Limits, run_agent
from floom_git.agents.messages import Message
from floom_git.agents.pricing import PriceTable
from floom_git.agents.transcript import Transcript
from floom_git.agents.turn import RetryPolicy
from floom_git.runtime.redaction import Redactor
from floom_git.schemas.conversation import ChatMessage, ChatUsage, Conversation
from floom_git.schemas.run import ToolCall
from floom_git.services import instructions
from floom_git.services.actor import Actor
from floom_git.services.chat_tools import ChatContext, chat_tools
from floom_git.services.conversations import ConversationStore
from floom_git.services.runs import iso, now
from floom_git.services.workspaces import Workspace

Emit = Callable[[dict[str, Any]], Awaitable[None]]
SHOWN = ("text_delta", "tool_call_start", "tool_call", "provider_retry")  # events a chat streams
TITLE_CHARS = 80
PREAMBLE = """You are the agent of the floom-git workspace "{ws}". Workers here are Python scripts
and AI agents; their runs, context packs (the workspace's knowledge) and issues are files in the
workspace's git repository. You help {name}, whose role here is {role}: your tools act with their
permissions. {can}
Answer briefly and say what you did. The workspace's own instructions (workspace.md) follow."""
CAN_WRITE = "You can start runs and open, comment on and close issues."
READ_ONLY = "They can read but not change anything, so you have no tools that write."


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def system_prompt(ws: Workspace, actor: Actor) -> str:
    head = PREAMBLE.format(ws=ws.id, name=actor.name, role=actor.role,
                           can=CAN_WRITE if actor.can("member") else READ_ONLY)
    return f"{head}\n\n{instructions.read(ws).strip()}\n"


def start(store: ConversationStore, actor: Actor, message: str,
          conversation_id: str | None) -> Conversation:
    """The conversation a message goes to: the caller's `conversation_id` (NotFound when it is
    not theirs), or a new one titled by the message."""
    if conversation_id is not None:
        return store.get(conversation_id, actor)
    stamp = iso(now())
    title = " ".join(message.split())[:TITLE_CHARS]
    conversation = Conversation(id=new_id("conv"), title=title, created_by=actor.user_id,
                                created_at=stamp, updated_at=stamp)
    store.put(conversation)
    return conversation


def _history(messages: list[ChatMessage]) -> list[Message]:
    """Earlier turns as the model sees them again: what was said, not the tool calls made."""
    return [Message(role=m.role, content=m.content) for m in messages if m.content]


async def answer(ws: Workspace, actor: Actor, store: ConversationStore, conversation: Conversation,
                 message: str, *, config: AgentConfig, prices: PriceTable, limits: Limits,
                 policy: RetryPolicy, emit: Emit, history: list[ChatMessage]) -> ChatMessage:
    """Store `message`, answer it, store and return the answer; every step goes to `emit`."""
    redactor = Redactor({config.api_key_secret: config.api_key} if config.api_key_secret else {})
    asked = ChatMessage(id=new_id("msg"), role="user", content=redactor.line(message),
                        created_at=iso(now()), created_by=actor.user_id)
    store.append(conversation, asked)
    await emit({"type": "conversation", "conversation_id": conversation.id,
                "message_id": asked.id, "title": conversation.title})
    transcript = Transcript(provider=config.provider, model=config.model,
                            system=system_prompt(ws, actor),
                            messages=[*_history(history), Message(role="user", content=message)])

    async def sink(event: Event) -> None:
        data = redactor.value(msgspec.to_builtins(event))
        if data["type"] in SHOWN:
            await emit(data)

    provider = make_provider(config, timeout=limits.timeout_s)
    try:
        result = await run_agent(provider, transcript, chat_tools(ChatContext(ws, actor)), sink,
                                 limits=limits, policy=policy, prices=prices)
    finally:
        await provider.aclose()
    reply = ChatMessage(
        id=new_id("msg"), role="assistant", content=redactor.line(result.text),
        created_at=iso(now()),
        tool_calls=[ToolCall(id=c.id, name=c.name, arguments=redactor.value(c.arguments),
                             result=redactor.value(c.result), error=redactor.value(c.error),
                             error_code=c.error_code, turn=c.turn, duration_ms=c.duration_ms)
                    for c in result.tool_calls],
        usage=ChatUsage(provider=config.provider, model=config.model,
                        input_tokens=result.usage.input_tokens,
                        output_tokens=result.usage.output_tokens, cost_usd=result.cost_usd),
        error=redactor.value(result.error), error_code=result.error_code)
    store.append(conversation, reply)
    await emit({"type": "message", "conversation_id": conversation.id,
                "message": msgspec.to_builtins(reply)})
    return reply

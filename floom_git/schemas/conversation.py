"""Conversations with the workspace agent (branch floom/conversations:
conversations/<id>/conversation.json and messages.ndjson) and the API bodies of the chat."""

from __future__ import annotations

from typing import Annotated, Literal

from floom_git.schemas.base import NOT_BLANK, Body, Out
from floom_git.schemas.patterns import matching
from floom_git.schemas.run import Record, ToolCall

CONVERSATION_ID = r"^conv_[0-9a-f]{12}$"
MAX_MESSAGE = 100_000


class Conversation(Record, kw_only=True):
    """conversation.json: who the conversation belongs to and what it is about."""

    id: str
    title: str  # the start of its first message
    created_by: str  # user id; only they (and the workspace's admins) see it
    created_at: str
    updated_at: str
    message_count: int = 0


class ChatUsage(Record, kw_only=True):
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


class ChatMessage(Record, kw_only=True):
    """One line of messages.ndjson: a person's message, or the agent's answer with the tool
    calls it made for it (and the error that cut it short, if one did)."""

    id: str
    role: Literal["user", "assistant"]
    content: str
    created_at: str
    created_by: str | None = None  # the person (user messages)
    tool_calls: list[ToolCall] = []
    usage: ChatUsage | None = None
    error: str | None = None
    error_code: str | None = None


class ChatRequest(Body, kw_only=True):
    message: Annotated[str, matching(
        NOT_BLANK,
        "a message that is not blank", min_length=1, max_length=MAX_MESSAGE)]
    conversation_id: Annotated[str, matching(
        CONVERSATION_ID,
        "a conversation id: `conv_` and 12 hex digits")] | None = None


class ConversationOut(Out, kw_only=True):
    id: str
    title: str
    created_by: str
    created_at: str
    updated_at: str
    message_count: int


class ConversationDetail(ConversationOut, kw_only=True):
    messages: list[ChatMessage]

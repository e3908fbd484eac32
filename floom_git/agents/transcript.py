"""The whole state of an agent run as one JSON document: the conversation, the tool calls made,
tokens used, outputs written, time spent, and the approval it waits for. Stored durably while a
run is parked, it is all the loop needs to resume, in this process or after a restart."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from floom_git.agents.events import ToolCallRecord
from floom_git.agents.messages import Message, Usage

VERSION = 1


class PendingApproval(msgspec.Struct, kw_only=True):
    call_id: str  # the request_approval call whose result is the decision
    label: str
    preview: str


class Transcript(msgspec.Struct, kw_only=True):
    version: int = VERSION
    provider: str
    model: str
    system: str
    messages: list[Message]
    tool_calls: list[ToolCallRecord] = []
    usage: Usage = msgspec.field(default_factory=Usage)
    turns: int = 0  # model calls made (limits.max_tool_iterations bounds them)
    bad_calls: int = 0  # malformed or unknown tool calls and nudges (limits.max_bad_calls)
    outputs: dict[str, Any] = {}
    elapsed_s: float = 0.0  # time spent running; time waiting for approval is not counted
    pending: PendingApproval | None = None

    @classmethod
    def start(cls, *, provider: str, model: str, system: str, user: str) -> Transcript:
        return cls(provider=provider, model=model, system=system,
                   messages=[Message(role="user", content=user)])

    def decide(self, approved: bool, *, reason: str | None = None,
               decided_by: str | None = None) -> None:
        """Answer the pending request_approval call with the decision, so the loop resumes.

        Raises ValueError when nothing is pending.
        """
        if self.pending is None:
            raise ValueError("this transcript is not waiting for an approval")
        result = {"decision": "approved" if approved else "rejected", "reason": reason,
                  "decided_by": decided_by}
        result = {k: v for k, v in result.items() if v is not None}
        self.messages.append(Message(role="tool", tool_call_id=self.pending.call_id,
                                     content=json.dumps(result)))
        for record in self.tool_calls:
            if record.id == self.pending.call_id:
                record.result = result
        self.pending = None


def encode(transcript: Transcript) -> bytes:
    return msgspec.json.encode(transcript)


def decode(data: bytes | str) -> Transcript:
    """Raises ValueError for a document that is not a transcript this server can resume."""
    try:
        transcript = msgspec.json.decode(data, type=Transcript)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not an agent transcript: {exc}") from None
    if transcript.version != VERSION:
        raise ValueError(f"agent transcript version {transcript.version} is not {VERSION}")
    return transcript

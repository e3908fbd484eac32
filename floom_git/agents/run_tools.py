"""The built-in tools of an agent run: `log` (a line in the run's log) and `request_approval`
(park the run until a person decides), and `agent_run_tools`, the full set a worker gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from floom_git.agents.context_tools import context_tools
from floom_git.agents.events import AgentLog, Sink
from floom_git.agents.outputs import OutputSink, output_tools
from floom_git.agents.tools import AwaitApproval, Tool, select_tools, struct_tool

MAX_LOG_CHARS = 4000
MAX_PREVIEW_CHARS = 20_000


class LogArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    message: Annotated[str, msgspec.Meta(min_length=1)]
    level: Literal["debug", "info", "warning", "error"] = "info"


class ApprovalArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200,
                                       description="What a person approves, e.g. `Send the email`")]
    preview: Annotated[str, msgspec.Meta(max_length=MAX_PREVIEW_CHARS, description=(
        "What they need to see to decide (markdown)"))] = ""


def log_tool(sink: Sink) -> Tool:
    async def log(args: LogArgs) -> str:
        await sink(AgentLog(level=args.level, message=args.message[:MAX_LOG_CHARS]))
        return "logged"

    return struct_tool("log", "Write a line to this run's log for the people who read it.",
                       LogArgs, log)


def approval_tool() -> Tool:
    async def request_approval(args: ApprovalArgs) -> AwaitApproval:
        return AwaitApproval(label=args.label, preview=args.preview)

    return struct_tool("request_approval", "Ask a person to approve a step before you take it. "
                       "The run pauses; the result is their decision (approved or rejected, with "
                       "a reason). Make no other call in the same turn.", ApprovalArgs,
                       request_approval)


def agent_run_tools(*, mounts: Mapping[str, Path], outputs: OutputSink, sink: Sink,
                    disabled: list[str] | tuple[str, ...] = (),
                    extra: Sequence[Tool] = ()) -> list[Tool]:
    """Context files, outputs, log and approval, then `extra` (the tools of the worker's
    connections), minus the worker's `disable_tools`."""
    tools = [*context_tools(mounts), *output_tools(outputs), log_tool(sink), approval_tool(),
             *extra]
    return select_tools(tools, disabled)

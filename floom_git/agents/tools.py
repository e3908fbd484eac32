"""What a tool is to the loop: a name, a description, a JSON schema of its arguments and an async
callable; the two results that end a loop (finished, awaiting approval); `disable_tools`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from floom_git.agents.messages import ToolSpec
from floom_git.schemas.patterns import explain

S = TypeVar("S", bound=msgspec.Struct)


class ToolError(Exception):
    """The tool refused the call; the message goes back to the model as an error result and
    `code` (tool_error unless a subclass says otherwise) into the call's record."""

    code = "tool_error"


class BadArguments(ToolError):
    """The arguments do not match the tool's schema (counted like a malformed call)."""


@dataclass(frozen=True)
class Finished:
    """Returned by a tool to end the run as completed once the current turn is processed."""

    outputs: dict[str, Any]
    message: str = "All outputs recorded; the run is finished."


@dataclass(frozen=True)
class AwaitApproval:
    """Returned by a tool to park the run as pending_approval; the decision becomes its result."""

    label: str
    preview: str


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[[dict[str, Any]], Awaitable[Any]]
    connection_id: str | None = None  # a remote tool's connection, copied into its call records

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


def struct_tool(name: str, description: str, args: type[S],
                fn: Callable[[S], Awaitable[Any]]) -> Tool:
    """A tool whose arguments are the msgspec Struct `args`: its schema is derived from the
    struct, and arguments that do not convert raise BadArguments with msgspec's `$.path`."""

    async def call(raw: dict[str, Any]) -> Any:
        try:
            value = msgspec.convert(raw, args, strict=False)
        except msgspec.ValidationError as exc:
            raise BadArguments(explain(exc)) from None
        return await fn(value)

    return Tool(name, description, object_schema(args), call)


def object_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON schema of `struct` as a plain object schema (providers want no `$ref` at the
    top); other definitions it uses stay under `$defs`."""
    schema = msgspec.json.schema(struct)
    defs = dict(schema.get("$defs", {}))
    root = dict(defs.pop(struct.__name__, schema))
    root.pop("title", None)
    if defs:
        root["$defs"] = defs
    return root


def select_tools(tools: Iterable[Tool], disabled: Iterable[str] = ()) -> list[Tool]:
    """`tools` without the names in `disabled` (worker.yml `exec.disable_tools`); a name that
    matches no tool is ignored, as the reference also lists tools this server does not have."""
    off = set(disabled)
    out: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in out:
            raise ValueError(f"two tools are named {tool.name}")
        if tool.name not in off:
            out[tool.name] = tool
    return list(out.values())

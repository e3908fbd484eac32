"""The outputs of an agent run, checked against the worker's declared outputs: `write_output`
(one at a time) and `finish_with_outputs` (all, then the run ends). Scalar outputs keep their
value; a file output's text is written under `out/` in the run directory and its value is that
relative path, as in script mode. A run must write every required output, and at least one
output when it declares any."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Annotated, Any

import msgspec

from floom_git.agents.tools import Finished, Tool, ToolError, struct_tool
from floom_git.errors import InvalidInput
from floom_git.schemas.fields import check_value
from floom_git.schemas.manifest import Field
from floom_git.storage.atomic import atomic_write

MAX_FILE_BYTES = 10 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXT = {"text/markdown": "md", "text/csv": "csv", "application/json": "json"}


class OutputSink:
    """Declared outputs and what the agent has written so far (`values`, restorable from a
    transcript). With no declared outputs, any identifier takes any JSON value."""

    def __init__(self, fields: list[Field], workdir: Path, values: dict[str, Any] | None = None,
                 *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.fields = {f.name: f for f in fields}
        self.workdir = workdir
        self.values: dict[str, Any] = dict(values or {})
        self.max_file_bytes = max_file_bytes

    def missing(self) -> list[str]:
        """Required outputs not written yet; when none is required, a run that declares outputs
        must still produce one, so all declared ones count as missing until then."""
        required = [n for n, f in self.fields.items() if f.required and n not in self.values]
        if required or self.values or any(f.required for f in self.fields.values()):
            return required
        return list(self.fields)

    def check(self, name: str, value: Any) -> tuple[Any, bytes | None]:
        """The stored value and, for a file output, the bytes to write. Raises ToolError."""
        at = f"outputs.{name}"
        field = self.fields.get(name)
        if field is None:
            if self.fields:
                raise ToolError(f"{at}: not a declared output (declared: {', '.join(self.fields)})")
            if not _NAME.match(name):
                raise ToolError(f"{at}: an output name is a letter or _ then letters, digits, _")
            return value, None
        try:
            if field.kind != "file":
                return check_value(field, value, at), None
            if not isinstance(value, str):
                raise InvalidInput(f"{at}: a file output takes the file's text as a string")
            data = value.encode("utf-8")
            if len(data) > self.max_file_bytes:
                raise InvalidInput(f"{at}: {len(data)} bytes, more than {self.max_file_bytes}")
            _check_file(field, value, at)
            return file_path(field), data
        except InvalidInput as exc:
            raise ToolError(exc.message) from None

    def store(self, name: str, value: Any, data: bytes | None) -> None:
        if data is not None:
            _write(self.workdir / value, data)
        self.values[name] = value


def file_path(field: Field) -> str:
    """Where a file output goes in the run directory: its declared `path` (under `out/`), else
    `out/<name>.<md|csv|json|bin>`."""
    if field.path:
        parts = field.path.split("/")
        if parts[0] != "out" or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise InvalidInput(f"outputs.{field.name}: path {field.path!r} must be under out/")
        return field.path
    return f"out/{field.name}.{_EXT.get(field.media_type or '', 'bin')}"


def _check_file(field: Field, text: str, at: str) -> None:
    media = field.media_type or ""
    if media == "application/json" or field.json_required_keys:
        try:
            doc = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"{at}: not valid JSON ({exc})") from None
        keys = field.json_required_keys or []
        absent = [k for k in keys if not isinstance(doc, dict) or k not in doc]
        if absent:
            raise InvalidInput(f"{at}: the JSON object lacks {', '.join(absent)}")
    if field.columns:
        header = next(csv.reader(io.StringIO(text)), [])
        absent = [c for c in field.columns if c not in header]
        if absent:
            raise InvalidInput(f"{at}: the CSV header lacks {', '.join(absent)}")


def _write(path: Path, data: bytes) -> None:
    # durable: a run parked for approval resumes with its files after a restart.
    atomic_write(path, data, mode=0o644, durable=True)


class WriteArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(description="A declared output")]
    value: Annotated[Any, msgspec.Meta(description="The value; for a file output its full text")]


class FinishArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outputs: Annotated[dict[str, Any], msgspec.Meta(
        description="Every output not written yet, by name; for a file output its full text")]


def output_tools(sink: OutputSink) -> list[Tool]:
    async def write_output(args: WriteArgs) -> dict[str, Any]:
        value, data = sink.check(args.name, args.value)
        await asyncio.to_thread(sink.store, args.name, value, data)
        return {"written": args.name, "missing": sink.missing()}

    async def finish_with_outputs(args: FinishArgs) -> Finished:
        checked = {name: sink.check(name, value) for name, value in args.outputs.items()}
        absent = [n for n in sink.missing() if n not in checked]
        if absent:
            raise ToolError(f"missing outputs: {', '.join(absent)}; nothing was written")
        for name, (value, data) in checked.items():
            await asyncio.to_thread(sink.store, name, value, data)
        return Finished(outputs=dict(sink.values))

    declared = "; ".join(_describe(f) for f in sink.fields.values()) or "none declared"
    return [
        struct_tool("write_output", f"Record one output of this run. Outputs: {declared}.",
                    WriteArgs, write_output),
        struct_tool("finish_with_outputs", "Record the remaining outputs and end the run. "
                    f"Outputs: {declared}.", FinishArgs, finish_with_outputs),
    ]


def _describe(f: Field) -> str:
    kind = (
        f"file {file_path(f)} ({f.media_type or 'text'})"
        if f.kind == "file"
        else (f.type or "string")
    )
    return f"{f.name}: {kind}{', required' if f.required else ''}"

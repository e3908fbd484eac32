"""The first user message of an agent run: its inputs, the contexts it can read and the outputs
it must produce (SKILL.md itself is the system prompt, unchanged)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from floom_git.agents.outputs import file_path
from floom_git.schemas.manifest import Field


def first_message(inputs: dict[str, Any], outputs: list[Field], contexts: Iterable[str],
                  tool_names: Iterable[str]) -> str:
    names = set(tool_names)
    parts = ["Inputs of this run:", "```json", json.dumps(inputs, indent=2, ensure_ascii=False,
                                                          default=str), "```"]
    mounted = sorted(contexts)
    if mounted and "read_file" in names:
        parts.append("Contexts you can read (list_files, read_file): "
                     + ", ".join(f"context/{c}/" for c in mounted))
    if outputs:
        parts.append("Outputs to produce:")
        for f in outputs:
            what = (
                f"file {file_path(f)}, give its full text"
                if f.kind == "file"
                else (f.type or "string")
            )
            need = "required" if f.required else "optional"
            about = f" - {f.description}" if f.description else ""
            parts.append(f"- {f.name} ({what}; {need}){about}")
        if "finish_with_outputs" in names:
            parts.append("When you are done, call finish_with_outputs with the outputs.")
        elif "write_output" in names:
            parts.append("Record each output with write_output, then stop.")
    return "\n".join(parts)

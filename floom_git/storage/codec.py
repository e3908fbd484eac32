"""Deterministic encodings for files in the repository, and safe YAML reading.

YAML is read with libyaml and refuses aliases and deep nesting (alias bombs); YAML is written
with a fixed key order and a trailing newline, and single top-level fields are edited in place
so that pausing a worker is a one-line diff that keeps the author's comments.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from floom_git.errors import InvalidInput

try:
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper

MAX_DEPTH = 32
MAX_YAML_BYTES = 1024 * 1024


def load_yaml(data: bytes | str, *, where: str) -> Any:
    """Parse YAML; InvalidInput naming `where` on syntax errors, aliases or deep nesting."""
    if isinstance(data, bytes):
        if len(data) > MAX_YAML_BYTES:
            raise InvalidInput(f"{where}: file is larger than {MAX_YAML_BYTES} bytes")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        depth = 0
        for event in yaml.parse(data, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise InvalidInput(f"{where}: YAML anchors and aliases are not allowed")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InvalidInput(f"{where}: YAML is nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"{where}: invalid YAML{at}: {problem}") from None


def dump_yaml(data: Any) -> bytes:
    """YAML with keys in the given order, block style, unicode kept, trailing newline."""
    text = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return text.encode("utf-8")


def dump_json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()


def set_top_level(text: str, key: str, value: Any) -> str:
    """Set top-level `key: value` in YAML `text`, editing only that line (appended if absent).

    Removes the line when `value` is None. Scalars only.
    """
    rendered = yaml.dump({key: value}, Dumper=_Dumper, default_flow_style=True, width=10_000)
    line = rendered.strip().strip("{}")
    pattern = re.compile(rf"^{re.escape(key)}\s*:.*$", re.MULTILINE)
    if pattern.search(text):
        # A block value (lines indented below the key) would be left dangling; refuse that.
        match = pattern.search(text)
        assert match is not None
        rest = text[match.end():].split("\n", 2)
        if len(rest) > 1 and rest[1][:1] in (" ", "\t", "-") and rest[1].strip():
            raise InvalidInput(f"worker.yml: `{key}` is not a single-line value; edit it by hand")
        if value is None:
            return re.sub(rf"^{re.escape(key)}\s*:.*(\n|$)", "", text, count=1, flags=re.MULTILINE)
        return pattern.sub(line.replace("\\", "\\\\"), text, count=1)
    if value is None:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"

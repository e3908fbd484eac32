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
            raise InvalidInput(
                f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
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


def _continues(lines: list[str], i: int) -> bool:
    """Whether line `i` still belongs to the block value of the top-level key above it: indented
    (an indented comment too), a `- ` item at column 0, or blank/column-0 comment lines followed
    by such a line."""
    for line in lines[i:]:
        if line.strip() and line[:1] in (" ", "\t", "-"):
            return True  # indented (comments too) or an item: still the block
        if not line.strip() or line.startswith("#"):
            continue  # blank or a column-0 comment: the next content line decides
        return False
    return False


def set_top_level(text: str, key: str, value: Any) -> str:
    """Set top-level `key: value` in YAML `text`, replacing only that key's lines (its line and
    a block value below it) and keeping every other line and comment as it was. Appended when
    absent; removed when `value` is None. Scalars stay on one line; lists and mappings are
    written in block style under the key."""
    flow = yaml.dump({key: value}, Dumper=_Dumper, default_flow_style=True, width=10_000)
    if isinstance(value, dict | list) and value or "\n" in flow.strip():
        rendered = yaml.dump({key: value}, Dumper=_Dumper, default_flow_style=False,
                             sort_keys=False, allow_unicode=True)
    else:
        rendered = flow.strip()[1:-1] + "\n"
    lines = text.splitlines(keepends=True)
    head = re.compile(rf"^{re.escape(key)}\s*:")
    for i, line in enumerate(lines):
        if head.match(line):
            end = i + 1
            while end < len(lines) and _continues(lines, end):
                end += 1
            tail = lines[end:]
            return "".join(lines[:i] + ([] if value is None else [rendered]) + tail)
    if value is None:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + rendered

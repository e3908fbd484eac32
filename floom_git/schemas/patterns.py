"""Field patterns in words: every constrained string of a schema is declared with `matching`,
which records what a person reads when a value does not fit, and `explain` puts those words in
place of the raw regex msgspec reports (`Expected `str` matching regex '^[a-z0-9]...'`). Given
the type that was decoded, `explain` also names the values an enum field allows and what a
patterned field expects when it got a number (`version: 1.0`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

_WORDS: dict[str, str] = {}
_BY_REPR: dict[str, str] = {}  # msgspec shows a pattern as Python's repr() of it
# msgspec: "Expected `str` matching regex '<pattern>'" [" - at `$.path`"]; the pattern may hold
# quotes, so it runs to the last quote before the path (or the end).
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_REGEX = re.compile(r"Expected `str` matching regex (?P<repr>'.*'|\".*\")"
                    r"(?P<rest>( - at `[^`]*`)?)$", re.S)


def matching(pattern: str, words: str, **meta: Any) -> msgspec.Meta:
    """A msgspec constraint for `pattern`; `words` finish the sentence "Expected ..." (e.g.
    "3 to 64 lowercase letters, digits and dashes, starting and ending with a letter or digit")."""
    _WORDS[pattern] = words
    _BY_REPR[repr(pattern)] = words
    return msgspec.Meta(pattern=pattern, **meta)


def words_for(pattern: str) -> str | None:
    return _WORDS.get(pattern)


def explain(exc: BaseException | str, type_: Any = None) -> str:
    """The message of a msgspec validation error with any regex replaced by its words; a
    pattern declared without words reads "a value in the expected format" (never the regex).
    With the decoded `type_`, an invalid enum value lists the allowed ones, and a patterned
    string field that got another type says what it expects."""
    message = str(exc)
    found = _REGEX.search(message)
    if found:
        words = _BY_REPR.get(found["repr"], "a value in the expected format (see /openapi.json)")
        return message[:found.start()] + f"Expected {words}" + found["rest"]
    at = _AT.search(message)
    if type_ is None or at is None:
        return message
    info = _field_at(mi.type_info(type_), at["path"])
    if message.startswith("Invalid enum value") and isinstance(info, mi.LiteralType):
        return (message[:at.start()] + " (allowed: " + ", ".join(map(str, info.values)) + ")"
                + message[at.start():])
    expected = _WORDS.get(info.pattern or "") if isinstance(info, mi.StrType) else None
    if expected and message.startswith("Expected `str`, got"):
        return f"Expected {expected}, got" + message[len("Expected `str`, got"):]
    return message


def _field_at(info: mi.Type | None, path: str) -> mi.Type | None:
    """The type at a msgspec error path (`.exec.inputs[0].type`), through lists and optionals."""
    for name, _index in _STEP.findall(path):
        info = _unwrap(info)
        if name and isinstance(info, mi.StructType):
            info = next((f.type for f in info.fields if f.encode_name == name), None)
        elif not name and isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType):
            info = info.item_type
        elif name and isinstance(info, mi.DictType):
            info = info.value_type
        else:
            return None
    return _unwrap(info)


def _unwrap(info: mi.Type | None) -> mi.Type | None:
    """The one non-None member of an optional, or `info` itself."""
    if isinstance(info, mi.UnionType):
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return members[0] if len(members) == 1 else info
    return info

"""Field patterns in words: every constrained string of a schema is declared with `matching`,
which records what a person reads when a value does not fit, and `explain` puts those words in
place of the raw regex msgspec reports (`Expected `str` matching regex '^[a-z0-9]...'`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_WORDS: dict[str, str] = {}
_BY_REPR: dict[str, str] = {}  # msgspec shows a pattern as Python's repr() of it
# msgspec: "Expected `str` matching regex '<pattern>'" [" - at `$.path`"]; the pattern may hold
# quotes, so it runs to the last quote before the path (or the end).
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


def explain(exc: BaseException | str) -> str:
    """The message of a msgspec validation error with any regex replaced by its words; a
    pattern declared without words reads "a value in the expected format" (never the regex)."""
    message = str(exc)
    found = _REGEX.search(message)
    if not found:
        return message
    words = _BY_REPR.get(found["repr"], "a value in the expected format (see /openapi.json)")
    return message[:found.start()] + f"Expected {words}" + found["rest"]

"""The base structs of every API body and of every file the server reads from a repository, and
`plain` for nested structs in responses.

Two rules hold for every route (tests/http/test_shapes.py walks the route table to keep them):
requests ignore unknown fields, as the reference's FastAPI models do and its clients rely on,
while a known field of the wrong type is still a 400 naming it; responses never drop a field
because it is null, empty or default, so a client sees one shape per resource in every state.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Body(msgspec.Struct, kw_only=True):
    """A request body: unknown fields are ignored, known ones are type-checked."""


class Out(msgspec.Struct, kw_only=True):
    """A response body: every field is always present (never omit_defaults or UNSET)."""


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A file in the repository (worker.yml, connections.yml, a catalog entry): a misspelt key
    is an error naming it, and defaults stay out of what the server writes back."""


def plain(value: Any) -> Any:
    """Builtins of `value` with every struct field present: msgspec.to_builtins would drop the
    defaults of structs declared with omit_defaults (the manifest's, kept short on disk)."""
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


# Python's whitespace (str.isspace, re's \s), spelled out: other regex engines (the fuzzer's,
# a client's) read \s differently, and these patterns must say exactly what the server accepts.
WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{WS}]"


def one_line(max_length: int, delete_ok: bool = True) -> str:
    """Trimmed, then 1..max_length characters and no control characters (names, titles)."""
    bad = r"\x00-\x1f" + ("" if delete_ok else r"\x7f")
    inner, edge = f"[^{bad}]", f"[^{bad}{WS}]"
    return f"^[{WS}]*{edge}(?:{inner}{{0,{max_length - 2}}}{edge})?[{WS}]*$"


def documented(pattern: str | None = None, max_length: int | None = None,
               min_length: int | None = 1, **more: Any) -> msgspec.Meta:
    """Bounds a service checks itself (with its own message), stated in /openapi.json only."""
    schema: dict[str, Any] = dict(more)
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    if pattern is not None:
        schema["pattern"] = pattern
    return msgspec.Meta(extra_json_schema=schema)

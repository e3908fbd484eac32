"""The two base structs of every API body, and `plain` for nested structs in responses.

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

"""The two body rules of every route (schemas/base.py), checked over the whole route table so a
route added later follows them too: request bodies ignore unknown fields (the reference's
clients send some) and check known ones; responses never drop a field that is null, empty or
default (no omit_defaults, no UNSET), so a client sees one shape per resource in every state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from floom_git.http import openapi
from floom_git.http.routes import ROUTES


def _structs(t: Any) -> Iterator[type[msgspec.Struct]]:
    """Every struct type reachable from type `t`."""
    seen: set[Any] = set()

    def walk(info: mi.Type) -> Iterator[type[msgspec.Struct]]:
        if isinstance(info, mi.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            yield info.cls
            for f in info.fields:
                yield from walk(f.type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                yield from walk(member)
        elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            yield from walk(info.item_type)
        elif isinstance(info, mi.DictType):
            yield from walk(info.value_type)
        elif isinstance(info, mi.Metadata):
            yield from walk(info.type)

    yield from walk(mi.type_info(t))


def _has_unset(t: Any) -> bool:
    return any(f.default is msgspec.UNSET for s in _structs(t) for f in msgspec.structs.fields(s))


ALL = list(ROUTES) + openapi.routes()
BODIES = sorted({r.body for r in ALL if r.body is not None}, key=lambda t: t.__name__)
RESPONSES = sorted({t for r in ALL for t in (r.response, *r.extra.get("also", {}).values())
                    if t is not None}, key=repr)


@pytest.mark.parametrize("body", BODIES, ids=lambda t: t.__name__)
def test_decode_request_body_ignores_unknown_fields(body: type) -> None:
    strict = [s.__name__ for s in _structs(body) if s.__struct_config__.forbid_unknown_fields]
    assert not strict, f"request structs that refuse unknown fields: {strict}"


@pytest.mark.parametrize("response", RESPONSES, ids=repr)
def test_encode_response_keeps_every_field(response: Any) -> None:
    dropping = [s.__name__ for s in _structs(response) if s.__struct_config__.omit_defaults]
    assert not dropping, f"response structs that drop default fields: {dropping}"
    assert not _has_unset(response), f"{response!r} has a field that can be UNSET (left out)"


def test_decode_known_field_of_wrong_type_names_it() -> None:
    from floom_git.errors import InvalidInput
    from floom_git.http.wire import decode_bytes
    from floom_git.schemas.run import WorkerPatch

    assert decode_bytes(b'{"enabled": false, "someday": 1}', WorkerPatch).enabled is False
    with pytest.raises(InvalidInput, match=r"Expected `bool \| null`, got `str` - at `\$.enabled`"):
        decode_bytes(b'{"enabled": "no"}', WorkerPatch)

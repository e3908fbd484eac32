"""Errors for values that do not fit a field's pattern say in words what is allowed, name the
field, and never show the regex: every pattern constraint of every schema has its words."""

from __future__ import annotations

import importlib
import pkgutil

import msgspec
import msgspec.inspect as mi
import pytest

import floom_git.schemas
from floom_git.schemas.patterns import explain, words_for
from tests.conftest import worker_body


def _patterns_of(info: mi.Type, seen: set[int], out: set[str]) -> None:
    if id(info) in seen:
        return
    seen.add(id(info))
    if isinstance(info, mi.StrType) and info.pattern is not None:
        out.add(info.pattern)
    for value in vars(info).values() if hasattr(info, "__dict__") else ():
        _walk(value, seen, out)
    for slot in getattr(type(info), "__struct_fields__", ()):
        _walk(getattr(info, slot), seen, out)


def _walk(value: object, seen: set[int], out: set[str]) -> None:
    if isinstance(value, mi.Type):
        _patterns_of(value, seen, out)
    elif isinstance(value, tuple | list):
        for item in value:
            _walk(item, seen, out)
    elif isinstance(value, mi.Field):
        _walk(value.type, seen, out)


def every_schema_pattern() -> set[str]:
    structs = []
    for module in pkgutil.iter_modules(floom_git.schemas.__path__):
        mod = importlib.import_module(f"floom_git.schemas.{module.name}")
        structs += [v for v in vars(mod).values()
                    if isinstance(v, type) and issubclass(v, msgspec.Struct)
                    and v.__module__ == mod.__name__]
    out: set[str] = set()
    seen: set[int] = set()
    for info in mi.multi_type_info(structs):
        _patterns_of(info, seen, out)
    return out


def test_every_pattern_of_every_schema_has_words():
    patterns = every_schema_pattern()
    assert len(patterns) >= 10  # the walk reaches the manifest's, the connections' ...
    assert {p for p in patterns if words_for(p) is None} == set()


def test_explain_puts_words_in_place_of_the_regex():
    from floom_git.schemas.manifest import Manifest

    try:
        msgspec.convert({"schema_version": "0.3", "name": "Bad Name", "title": "t",
                         "version": "1.0.0", "exec": {}}, Manifest)
    except msgspec.ValidationError as exc:
        message = explain(exc)
    assert "regex" not in message and "^" not in message
    assert message.startswith("Expected 3 to 64 lowercase letters, digits and dashes")
    assert message.endswith("- at `$.name`")
    unknown = "Expected `str` matching regex '^x[0-9]$' - at `$.a[0]`"
    assert (
        explain(unknown)
        == "Expected a value in the expected format (see /openapi.json) - at `$.a[0]`"
    )


async def test_api_errors_for_common_manifest_mistakes_explain_themselves(client):
    cases = {
        ("name: hello-world", "name: Hello_World"): (
            "lowercase letters, digits and dashes",
            "$.name",
        ),
        ("version: 1.0.0", "version: v1"): ("MAJOR.MINOR.PATCH", "$.version"),
    }
    for (old, new), (words, field) in cases.items():
        body = worker_body()
        assert old in body["worker_yml"]
        body["worker_yml"] = body["worker_yml"].replace(old, new)
        resp = await client.post("/api/workers", json=body)
        detail = (await resp.json())["detail"]
        assert resp.status == 400, detail
        assert words in detail and f"`{field}`" in detail and "regex" not in detail


def test_a_bad_secret_name_is_explained_in_words():
    from floom_git.errors import InvalidInput
    from floom_git.services.secrets import check_name

    with pytest.raises(InvalidInput) as info:
        check_name("lower-case")
    assert info.value.message.startswith(
        "secret name 'lower-case': expected a name of 1 to 64 uppercase"
    )
    assert "^" not in info.value.message


def test_enum_and_type_mistakes_in_a_manifest_say_what_is_allowed():
    from floom_git.errors import InvalidManifest
    from floom_git.schemas.manifest import parse_manifest

    base = 'schema_version: "0.3"\nname: abc\ntitle: t\nversion: 1.0.0\nexec: {entry: run.py}\n'
    cases = {
        ("version: 1.0.0", "version: 1.0"):
            "Expected a version MAJOR.MINOR.PATCH such as `1.0.0` (optionally `-beta.1`), "
            "got `float` - at `$.version`",
        ("exec: {entry: run.py}", "exec: {entry: run.py, inputs: [{name: a, type: strin}]}"):
            "Invalid enum value 'strin' (allowed: boolean, date, integer, json, number, select, "
            "string, text, textarea, url) - at `$.exec.inputs[0].type`",
        ("title: t", "title: t\nvisibility: team"):
            "Invalid enum value 'team' (allowed: private, public, shared, workspace) - at "
            "`$.visibility`",
    }
    for (old, new), expected in cases.items():
        with pytest.raises(InvalidManifest) as info:
            parse_manifest(base.replace(old, new), where="w.yml")
        assert info.value.message == f"w.yml: {expected}"


async def test_api_bodies_name_the_allowed_enum_values(client):
    resp = await client.patch("/api/workers/word-count", json={"visibility": "everyone"})
    assert resp.status == 400
    assert (await resp.json())["detail"] == (
        "request body: Invalid enum value 'everyone' (allowed: "
        "private, public, shared, workspace) - at `$.visibility`"
    )

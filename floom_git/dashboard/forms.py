"""Reading what a dashboard form sent: bounded text fields, JSON fields named in errors, and a
worker's run inputs converted from form strings the way its manifest declares them."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from floom_git.errors import InvalidInput

INPUT_PREFIX = "in."


async def fields(request: web.Request) -> MultiDictProxy[str]:
    """The posted form's text fields (urlencoded or multipart)."""
    data = await request.post()
    return MultiDictProxy(MultiDict((k, v) for k, v in data.items() if isinstance(v, str)))


def text(form: MultiDictProxy[str], name: str, limit: int = 10_000) -> str:
    value = form.get(name, "")
    if len(value) > limit:
        raise InvalidInput(f"{name}: at most {limit} characters")
    return value.replace("\r\n", "\n")


def json_field(form: MultiDictProxy[str], name: str) -> Any:
    """The field parsed as JSON; None when left empty."""
    raw = text(form, name, 1_000_000).strip()
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{name}: not valid JSON ({exc})") from None


def run_inputs(declared: list[dict[str, Any]], form: MultiDictProxy[str]) -> dict[str, Any]:
    """Inputs from the run form: empty fields are left out (so defaults apply and the run
    service names what is missing); JSON fields are parsed; the service checks the rest."""
    out: dict[str, Any] = {}
    for field in declared:
        name = field["name"]
        raw = text(form, INPUT_PREFIX + name, 1_000_000)
        if raw.strip() == "":
            continue
        if field.get("type") == "json":
            out[name] = json_field(form, INPUT_PREFIX + name)
        else:
            out[name] = raw
    return out

"""A value checked against a declared input or output field of worker.yml (type, bounds,
choices), converted where the meaning is clear (`"3"` for a number, `"true"` for a boolean)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from floom_git.errors import InvalidInput
from floom_git.schemas.manifest import Field


def choices(f: Field) -> list[Any] | None:
    raw = f.enum or f.options
    if not raw:
        return None
    return [o.get("value") if isinstance(o, dict) else o for o in raw]


def check_value(f: Field, value: Any, at: str) -> Any:
    """`value` as stored; InvalidInput naming `at` (e.g. `inputs.n`, `outputs.score`) when it
    does not fit. Run inputs, saved input values and agent outputs are all checked here."""
    if f.kind == "file":
        if not isinstance(value, str):
            raise InvalidInput(f"{at}: expected a file path or upload id (a string)")
        return value
    kind = f.type or "string"
    check: Callable[[Field, Any, str, str], Any] = CHECKS.get(kind, _text)
    value = check(f, value, kind, at)
    allowed = choices(f)
    if allowed is not None and value not in allowed:
        raise InvalidInput(f"{at}: must be one of {', '.join(str(c) for c in allowed[:20])}")
    return value


def _number(f: Field, value: Any, kind: str, at: str) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value) if kind == "number" else int(value)
        except ValueError:
            raise InvalidInput(f"{at}: expected a number, got '{value[:40]}'") from None
        if kind == "number" and float(value).is_integer():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{at}: expected a number")
    if kind == "integer" and not float(value).is_integer():
        raise InvalidInput(f"{at}: expected an integer")
    b = f.bounds
    if b and b.minimum is not None and value < b.minimum:
        raise InvalidInput(f"{at}: must be >= {b.minimum:g}")
    if b and b.maximum is not None and value > b.maximum:
        raise InvalidInput(f"{at}: must be <= {b.maximum:g}")
    return value


def _boolean(f: Field, value: Any, kind: str, at: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidInput(f"{at}: expected true or false")
    return value


def _json(f: Field, value: Any, kind: str, at: str) -> Any:
    return value


def _text(f: Field, value: Any, kind: str, at: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{at}: expected a string")
    if kind == "url" and not value.startswith(("http://", "https://")):
        raise InvalidInput(f"{at}: expected an http(s) URL")
    b = f.bounds
    if b and b.min_length is not None and len(value) < b.min_length:
        raise InvalidInput(f"{at}: must be at least {b.min_length} characters")
    if b and b.max_length is not None and len(value) > b.max_length:
        raise InvalidInput(f"{at}: must be at most {b.max_length} characters")
    return value


# How a value of each declared type is checked; every other type (string, text, url...) is text.
CHECKS: dict[str, Callable[[Field, Any, str, str], Any]] = {
    "number": _number,
    "integer": _number,
    "boolean": _boolean,
    "json": _json,
}

"""Finding a run's secret values in what it produced: plain, base64, base64url, hex and
URL-encoded, also inside a longer encoded text. A seat belt, not the boundary: a worker that
means to leak a secret it was given can always transform it some other way."""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from typing import Any

MIN_SECRET = 4  # shorter values would match everywhere
MIN_NEEDLE = 6  # encoded fragments shorter than this would match by chance in large files


def _base64_cores(value: bytes) -> set[str]:
    """The characters of base64(…+value+…) that depend on `value` alone, for each of the three
    offsets it can start at inside a longer encoded text (standard and URL-safe alphabets)."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).rstrip(b"=")
        head = (0, 2, 3)[offset]  # characters that mix in the bytes before the value
        tail = 0 if (offset + len(value)) % 3 == 0 else 1  # the last one mixes in the next byte
        core = encoded[head:len(encoded) - tail].decode()
        cores.update({core, core.replace("+", "-").replace("/", "_")})
    return cores


def needles(value: str) -> set[str]:
    """Every string whose presence shows `value`: itself and its encodings."""
    raw = value.encode()
    hexed = binascii.hexlify(raw).decode()
    whole = {hexed, hexed.upper(), urllib.parse.quote(value), urllib.parse.quote(value, safe=""),
             urllib.parse.quote_plus(value), "".join(f"%{b:02X}" for b in raw),
             "".join(f"%{b:02x}" for b in raw)}
    for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        whole |= {b64, b64.rstrip("=")}
    return {value} | {n for n in whole | _base64_cores(raw) if len(n) >= MIN_NEEDLE}


class Redactor:
    """The secrets of one run; `line` redacts text, `holder` names the secret found in bytes."""

    def __init__(self, secrets: dict[str, str]) -> None:
        table = []
        for name, value in secrets.items():
            if len(value) >= MIN_SECRET:
                table += [(n, name) for n in needles(value)]
        # Longest first, so an encoding is replaced whole before a shorter form inside it.
        self._table = sorted(table, key=lambda item: -len(item[0]))
        self._bytes = [(needle.encode(), name) for needle, name in self._table]

    def holder(self, data: bytes) -> str | None:
        """The name of a secret whose value (in any form searched) occurs in `data`, else None."""
        for needle, name in self._bytes:
            if needle in data:
                return name
        return None

    def line(self, text: str) -> str:
        for needle, name in self._table:
            if needle in text:
                text = text.replace(needle, f"<REDACTED:{name}>")
        return text

    def value(self, value: Any) -> Any:
        """`value` (JSON-like) with every string redacted."""
        if isinstance(value, str):
            return self.line(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.line(k) if isinstance(k, str) else k: self.value(v)
                    for k, v in value.items()}
        return value

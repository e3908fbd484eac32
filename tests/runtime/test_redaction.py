"""Secret values found in what a run produced: plain, base64, base64url, hex and URL-encoded,
whole or inside a longer encoded text; short values are left alone."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from floom_git.runtime.redaction import Redactor

SECRET = "tok/Ä+1=ß?&x"  # non-ASCII, and characters every encoding treats differently
FORMS = {
    "plain": SECRET,
    "base64": base64.b64encode(SECRET.encode()).decode(),
    "base64url": base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "base64 unpadded": base64.b64encode(SECRET.encode()).decode().rstrip("="),
    "hex": SECRET.encode().hex(),
    "HEX": SECRET.encode().hex().upper(),
    "url": urllib.parse.quote(SECRET),
    "url, nothing safe": urllib.parse.quote(SECRET, safe=""),
    "form": urllib.parse.quote_plus(SECRET),
    "percent every byte": "".join(f"%{b:02X}" for b in SECRET.encode()),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_line_with_encoded_secret_is_redacted(form):
    r = Redactor({"TOKEN": SECRET})
    assert r.line(f"before {FORMS[form]} after") == "before <REDACTED:TOKEN> after"
    assert r.holder(f"x{FORMS[form]}y".encode()) == "TOKEN"


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc"])
@pytest.mark.parametrize("alphabet", [base64.b64encode, base64.urlsafe_b64encode])
def test_secret_inside_longer_base64_text_is_found(prefix, alphabet):
    blob = alphabet(f"{prefix}{SECRET}and more text".encode())
    r = Redactor({"TOKEN": SECRET})
    assert r.holder(blob) == "TOKEN"
    assert "<REDACTED:TOKEN>" in r.line(blob.decode())


def test_short_secret_and_unrelated_text_are_left_alone():
    r = Redactor({"PIN": "123", "TOKEN": SECRET})
    assert r.line("pin 123, nothing else") == "pin 123, nothing else"
    assert r.holder(b"an ordinary artifact") is None


def test_value_redacts_nested_strings_and_keys():
    r = Redactor({"TOKEN": SECRET})
    value = {"a": [SECRET, 1, {"b": FORMS["hex"]}], SECRET: True}
    assert r.value(value) == {"a": ["<REDACTED:TOKEN>", 1, {"b": "<REDACTED:TOKEN>"}],
                              "<REDACTED:TOKEN>": True}

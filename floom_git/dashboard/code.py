"""Showing files and changes: Pygments highlighting by file name (text only, escaped by the
formatter; files are never rendered as HTML) and a unified diff between two versions."""

from __future__ import annotations

import difflib
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

MAX_HIGHLIGHT = 256 * 1024  # past this a file is shown plain: highlighting costs more than it helps
FORMATTER = HtmlFormatter(cssclass="hl", linenos="table", wrapcode=True)
DIFF_FORMATTER = HtmlFormatter(cssclass="hl")


def _lexer(path: str, text: str) -> Any:
    if len(text) > MAX_HIGHLIGHT:
        return TextLexer()
    try:
        return get_lexer_for_filename(path, text, stripnl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False)


def highlighted(path: str, text: str) -> Markup:
    return Markup(highlight(text, _lexer(path, text), FORMATTER))  # the formatter escapes the text


def _text_of(file: dict[str, Any]) -> list[str] | None:
    if file.get("binary") or file.get("content") is None:
        return None
    return str(file["content"]).splitlines(keepends=True)


def diff(old: list[dict[str, Any]], new: list[dict[str, Any]], old_name: str,
         new_name: str) -> list[dict[str, Any]]:
    """Per changed file: its path, what happened (added, deleted, changed) and the highlighted
    unified diff (None for binary files)."""
    before = {f["path"]: f for f in old}
    after = {f["path"]: f for f in new}
    changes = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        if a is not None and b is not None and a.get("content") == b.get("content") \
                and a.get("size") == b.get("size"):
            continue
        kind = "added" if a is None else "deleted" if b is None else "changed"
        lines_a = _text_of(a) if a else []
        lines_b = _text_of(b) if b else []
        body = None
        if lines_a is not None and lines_b is not None:
            text = "".join(difflib.unified_diff(lines_a, lines_b, f"{old_name}/{path}",
                                                f"{new_name}/{path}"))
            body = Markup(highlight(text, DiffLexer(stripnl=False), DIFF_FORMATTER))
        changes.append({"path": path, "kind": kind, "diff": body})
    return changes

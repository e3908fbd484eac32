"""Top-level edits of a YAML file keep every other line (comments included) as it was."""

from __future__ import annotations

import pytest

from floom_git.codec import load_yaml, set_top_level

TEXT = """name: x  # the id
triggers:
  - type: manual
    # a comment inside the block goes with it

# about pausing
paused: true
tags:
- a
- b
"""


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("paused", None, TEXT.replace("paused: true\n", "")),
    ("triggers", [{"type": "schedule", "cron": "0 9 * * *"}],
     TEXT.replace("  - type: manual\n    # a comment inside the block goes with it\n",
                  "- type: schedule\n  cron: 0 9 * * *\n")),
    ("tags", [], TEXT.replace("tags:\n- a\n- b\n", "tags: []\n")),
    ("input_values", {"text": "hi"}, TEXT + "input_values:\n  text: hi\n"),
    ("title", "a: b", TEXT + "title: 'a: b'\n"),
    ("triggers", None, TEXT.replace("triggers:\n  - type: manual\n"
                                    "    # a comment inside the block goes with it\n", "")),
])
def test_set_top_level_edits_only_that_key(key, value, expected):
    out = set_top_level(TEXT, key, value)
    assert out == expected
    parsed = load_yaml(out, where="t.yml")
    assert parsed.get(key) == value if value is not None else key not in parsed

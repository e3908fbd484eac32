"""The issue file format is byte-compatible with the reference."""

import pytest

from floom_git.errors import InvalidInput
from floom_git.schemas.issue import parse_issue_file, render

EXPECTED = """---
id: ISSUE-0002
status: open
title: gmail worker keeps failing
asset_type: worker
asset_id: gmail-inbox-manager
source: run_failure
labels:
- worker
- needs-attention
created_by: local-user
created_at: '2026-06-21T19:00:00.123456+00:00'
updated_at: '2026-06-21T19:05:00.123456+00:00'
custom: kept
---

Body text
"""


def test_render_matches_reference_bytes():
    meta = {"custom": "kept", "updated_at": "2026-06-21T19:05:00.123456+00:00", "id": "ISSUE-0002",
            "status": "open", "title": "gmail worker keeps failing", "asset_type": "worker",
            "asset_id": "gmail-inbox-manager", "source": "run_failure",
            "labels": ["worker", "needs-attention"], "created_by": "local-user",
            "created_at": "2026-06-21T19:00:00.123456+00:00", "nothing": None}
    assert render(meta, "  Body text\n\n").decode() == EXPECTED


def test_parse_round_trip():
    meta, body = parse_issue_file(EXPECTED.encode(), where=".floom/issues/ISSUE-0002.md")
    assert meta["custom"] == "kept" and body == "Body text\n"
    assert render(meta, body).decode() == EXPECTED


@pytest.mark.parametrize("text,field", [
    ("no front matter", "front matter"),
    ("---\nid: 7\ntitle: x\n---\n", "$.id"),
    ("---\nid: ISSUE-0002\nstatus: done\ntitle: x\n---\n", "$.status"),
    ("---\nid: ISSUE-0002\ntitle: ''\n---\n", "$.title"),
    ("---\nid: ISSUE-0002\ntitle: x\nasset_type: worker\n---\n", "$.asset_type"),
    ("---\nid: ISSUE-0003\ntitle: x\n---\n", "does not match"),
    ("---\nid: [unclosed\n---\n", "invalid YAML"),
])
def test_parse_rejects_bad_files(text, field):
    with pytest.raises(InvalidInput, match=__import__("re").escape(field)):
        parse_issue_file(text.encode(), where=".floom/issues/ISSUE-0002.md")

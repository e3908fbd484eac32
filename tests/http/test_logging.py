"""Structured logs: one JSON object per line carrying the request id the response returns."""

from __future__ import annotations

import io
import json
import logging

from floom_git import logs


def test_json_formatter_carries_request_id_and_extra_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs._RequestIdFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("floom_git.test_logging")
    logger.addHandler(handler)
    logger.propagate = False
    token = logs.REQUEST_ID.set("req-1")
    try:
        logger.warning("hello %s", "world", extra={"status": 201})
    finally:
        logs.REQUEST_ID.reset(token)
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "hello world" and entry["level"] == "warning"
    assert entry["request_id"] == "req-1" and entry["status"] == 201


def test_request_id_for_refuses_junk():
    assert logs.request_id_for("abc-123") == "abc-123"
    for junk in ("a b", "x\r\nSet-Cookie: y", "z" * 200, "", None):
        fresh = logs.request_id_for(junk)
        assert fresh != junk and len(fresh) == 16


async def test_response_returns_request_id(client):
    resp = await client.get("/api/workers", headers={"X-Request-ID": "trace-42"})
    assert resp.headers["X-Request-ID"] == "trace-42"
    resp = await client.get("/api/nothing")
    assert len(resp.headers["X-Request-ID"]) == 16

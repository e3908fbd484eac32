"""Server logging: one JSON object per line, each carrying the id of the request it belongs to
(the same id is returned in the X-Request-ID response header), or readable text lines when the
log goes to a terminal; one line per request only at debug level."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import secrets
import sys
from typing import IO

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def request_id_for(incoming: str | None) -> str:
    """The caller's X-Request-ID when it is a plain token, else a fresh one (never echo junk)."""
    if incoming and _SAFE_ID.match(incoming):
        return incoming
    return secrets.token_hex(8)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO  runs: message  key=value (request abc)`: for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        name = record.name.removeprefix("floom_git.")
        line = f"{when} {record.levelname:<5} {name}: {record.getMessage()}"
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extra:
            line += "  " + " ".join(f"{k}={v}" for k, v in extra.items())
        request_id = getattr(record, "request_id", None)
        if request_id:
            line += f" (request {request_id})"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def resolve_format(fmt: str, stream: IO[str]) -> str:
    """`auto`: text when the log stream is a terminal, JSON otherwise (files, journald, pipes)."""
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return fmt


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def setup(fmt: str = "auto", level: int | str = logging.INFO,
          stream: IO[str] | None = None) -> None:
    """Configure the root logger for the server process (`fmt`: auto, json or text; `level`: a
    logging level or one of LEVELS' names)."""
    if isinstance(level, str):
        level = LEVELS[level]
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RequestIdFilter())
    if resolve_format(fmt, stream) == "text":
        handler.setFormatter(TextFormatter())
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # One line per request (http/middleware.py's `floom_git.access`) only at debug level.
    logging.getLogger("floom_git.access").setLevel(logging.NOTSET if level <= logging.DEBUG
                                                   else logging.WARNING)

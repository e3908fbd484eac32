"""How the client shows things: rich tables and key/value blocks for people, plain JSON with
`--json`, progress bars for bundles, log lines, and the one-line `error:` message."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from floom_git.client.api import Progress as ProgressFn

LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "red",
               "critical": "bold red"}
STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan",
                "queued": "dim", "pending_approval": "magenta", "ready": "green", "error": "red",
                "paused": "yellow", "archived": "dim", "open": "green", "closed": "dim",
                "pending": "magenta", "approved": "green", "rejected": "red", "expired": "dim"}
Column = tuple[str, str]  # (header, key of the row)


def _console(file: IO[str], environ: Mapping[str, str]) -> Console:
    tty = file.isatty()
    width = int(environ["COLUMNS"]) if environ.get("COLUMNS", "").isdigit() else None
    return Console(file=file, width=width or (None if tty else 160), highlight=False,
                   no_color="NO_COLOR" in environ, force_terminal=tty or None, soft_wrap=not tty)


class Output:
    def __init__(self, stdout: IO[str], stderr: IO[str], environ: Mapping[str, str],
                 as_json: bool = False) -> None:
        self.out = _console(stdout, environ)
        self.err = _console(stderr, environ)
        self.as_json = as_json
        self._stdout = stdout

    # -- data -----------------------------------------------------------------------------------
    def json(self, data: Any) -> None:
        """Machine-readable output: plain JSON on stdout, no markup, no wrapping."""
        self._stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        self._stdout.flush()

    def json_line(self, data: Any) -> None:
        """One compact JSON document per line (for streams: NDJSON)."""
        self._stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._stdout.flush()

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *,
              empty: str = "nothing to show") -> None:
        if not rows:
            self.err.print(f"[dim]{escape(empty)}[/dim]")
            return
        table = Table(box=None, header_style="bold", pad_edge=False)
        for header, _ in columns:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(cell(row.get(key), key) for _, key in columns))
        self.out.print(table)

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """An aligned `label  value` block; None values are left out."""
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for label, value in pairs:
            if value is not None and value != "" and value != []:
                table.add_row(label, cell(value, label))
        self.out.print(table)

    def text(self, message: str, *, style: str = "") -> None:
        self.out.print(escape(message), style=style or None)

    def pretty_json(self, data: Any) -> None:
        self.out.print_json(data=data) if self.out.is_terminal else self.json(data)

    def done(self, data: Any, message: str) -> None:
        """The end of a write: its response as JSON with --json, else one line for a person."""
        if self.as_json:
            self.json(data)
        else:
            self.note(message)

    # -- messages on stderr -----------------------------------------------------------------------
    def note(self, message: str, *, style: str = "") -> None:
        self.err.print(escape(message), style=style or None)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/bold red] {escape(message)}")

    def log(self, line: Mapping[str, Any], *, to_stderr: bool = False) -> None:
        level = str(line.get("level") or "info")
        console = self.err if to_stderr else self.out
        prefix = "" if level == "info" else f"[{level}] "
        console.print(escape(prefix + str(line.get("message", ""))),
                      style=LEVEL_STYLE.get(level) or None)

    @contextmanager
    def progress(self, label: str) -> Iterator[ProgressFn]:
        """A transfer bar on stderr; yields the callback Api.download/upload report to."""
        bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), console=self.err, transient=True,
                       disable=not self.err.is_terminal)
        with bar:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            yield update


def cell(value: Any, key: str = "") -> str:
    """One table cell as rich markup: statuses coloured, lists joined, nested data as JSON."""
    if value is None:
        return "[dim]-[/dim]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return escape(", ".join(str(v) for v in value)) if all(
            isinstance(v, (str, int, float)) for v in value) else escape(json.dumps(value))
    if isinstance(value, dict):
        return escape(json.dumps(value, ensure_ascii=False))
    text = escape(str(value))
    style = STATUS_STYLE.get(str(value)) if key.lower() in ("status", "state") else None
    return f"[{style}]{text}[/{style}]" if style else text


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"

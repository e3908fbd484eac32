"""Running the `git` program: the one environment every git process gets (built from nothing,
so no setting, credential helper or variable of the server's own leaks in, and git never
prompts) and the pkt-line framing of git's wire protocol."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_HOME = "/tmp"  # git reads no config from it (GIT_CONFIG_GLOBAL), but wants one


def git_env(git: str = "git", *, home: Path | str = DEFAULT_HOME, **extra: str) -> dict[str, str]:
    """The whole environment of a `git` process (`git` names the program, found on PATH or
    absolute); `extra` adds variables (an identity, a protocol version, a header)."""
    program = shutil.which(git) or git
    env = {
        "PATH": os.pathsep.join([str(Path(program).parent), os.defpath]),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def pkt_line(data: bytes | str) -> bytes:
    """One pkt-line: four hex digits of length (themselves included), then the data."""
    raw = data.encode() if isinstance(data, str) else data
    return f"{len(raw) + 4:04x}".encode() + raw

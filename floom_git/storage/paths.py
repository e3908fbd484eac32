"""Resource ids <-> repository paths, and the one check every user-supplied path goes through.

Raises InvalidInput naming the offending path; never touches the filesystem.
"""

from __future__ import annotations

import re

from floom_git.errors import InvalidInput

WORKER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]\Z")
CONTEXT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
WORKSPACE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")

WORKERS_DIR = "workers"
CONTEXTS_DIR = "contexts"
WORKSPACE_MD = "workspace.md"
WORKSPACE_YML = "workspace.yml"
ISSUES_DIR = ".floom/issues"
MANIFEST = "worker.yml"
CONTEXT_META = "context.yml"

MAX_PATH_LEN = 1024
MAX_SEGMENT_LEN = 255
# Files that carry credentials: never accepted from uploads or pushes, never exported.
SECRET_FILE_RE = re.compile(r"(^|/)(\.env(\..*)?|[^/]*\.pem|[^/]*\.key)$", re.IGNORECASE)


def is_secret_file(path: str) -> bool:
    return bool(SECRET_FILE_RE.search(path))


def clean_relpath(path: str, *, field: str = "path") -> str:
    """Return `path` if it is a safe relative file path inside a resource, else raise InvalidInput.

    Refused: empty, absolute, backslashes, NUL or control characters, `.`/`..` segments,
    a `.git` segment, over-long names, trailing slash.
    """
    if not isinstance(path, str) or path == "":
        raise InvalidInput(f"{field}: must be a non-empty relative path")
    shown = path[:80].encode("unicode_escape").decode("ascii")
    if len(path) > MAX_PATH_LEN:
        raise InvalidInput(f"{field}: path is longer than {MAX_PATH_LEN} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise InvalidInput(f"{field}: '{shown}' contains a control or NUL character")
    if "\\" in path:
        raise InvalidInput(f"{field}: '{shown}' contains a backslash")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise InvalidInput(f"{field}: '{shown}' is an absolute path")
    segments = path.split("/")
    for seg in segments:
        if seg in ("", ".", ".."):
            raise InvalidInput(f"{field}: '{shown}' has an empty, '.' or '..' segment")
        if seg.lower() == ".git":
            raise InvalidInput(f"{field}: '{shown}' points into .git")
        if len(seg) > MAX_SEGMENT_LEN:
            raise InvalidInput(f"{field}: a segment of '{shown[:40]}' is too long")
    return path


def check_worker_id(worker_id: str) -> str:
    if not WORKER_ID_RE.match(worker_id or ""):
        raise InvalidInput(
            f"worker id '{worker_id[:80]}' must be a slug of 3-64 characters: "
            "lower-case letters, digits and '-', not starting or ending with '-'"
        )
    return worker_id


def check_context_name(name: str) -> str:
    if not CONTEXT_NAME_RE.match(name or ""):
        raise InvalidInput(
            f"context name '{name[:80]}' must be 1-64 characters of letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_workspace_id(ws_id: str) -> str:
    if not WORKSPACE_ID_RE.match(ws_id or ""):
        raise InvalidInput(
            f"workspace id '{ws_id[:80]}' must be 1-63 characters of lower-case letters, "
            "digits, '_' or '-'"
        )
    return ws_id


def worker_dir(worker_id: str) -> str:
    return f"{WORKERS_DIR}/{worker_id}"


def context_dir(name: str) -> str:
    return f"{CONTEXTS_DIR}/{name}"

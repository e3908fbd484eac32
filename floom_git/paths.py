"""Resource ids <-> repository paths, and the one check every path entering a repository goes
through (API, import, push, on-disk sync): ours plus git's own `verify_path` rules.

Raises InvalidInput naming the offending path; never touches the filesystem.
"""

from __future__ import annotations

import functools
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
CONNECTIONS_FILE = ".floom/connections.yml"
TOOLS_FILE = "workspace-tools.yml"

MAX_PATH_LEN = 1024
MAX_SEGMENT_LEN = 255
# Files that carry credentials: never accepted from uploads or pushes, never exported.
SECRET_FILE_RE = re.compile(r"(^|/)(\.env(\..*)?|[^/]*\.pem|[^/]*\.key)$", re.IGNORECASE)


FILE = "file"
FOLDER = "folder"
NOT_A_FOLDER = "must be a file, not a folder"
NOT_A_FILE = "must be a folder, not a file"
FLOOM_DIR = ".floom"


def expected_kind(path: str) -> str | None:
    """What the workspace reads at `path` (the one table every door checks): FILE for
    workspace.yml, the instructions (workspace.md), the registries, issue and comments files,
    worker manifests and context metadata; FOLDER for workers/, contexts/, .floom/,
    .floom/issues/ and each name there that the registry reads as a worker (a valid worker id)
    or a context pack (a valid context name; a hidden name such as .gitkeep never is); None
    where anything may stand (workers/README.md)."""
    if path in (WORKSPACE_YML, WORKSPACE_MD, CONNECTIONS_FILE, TOOLS_FILE):
        return FILE
    if path in (WORKERS_DIR, CONTEXTS_DIR, FLOOM_DIR, ISSUES_DIR):
        return FOLDER
    folder, _, name = path.rpartition("/")
    if folder == WORKERS_DIR:
        return FOLDER if WORKER_ID_RE.match(name) else None
    if folder == CONTEXTS_DIR:
        return FOLDER if CONTEXT_NAME_RE.match(name) else None
    top, _, owner = folder.partition("/")
    if (top, name) in ((WORKERS_DIR, MANIFEST), (CONTEXTS_DIR, CONTEXT_META)) and "/" not in owner:
        return FILE
    if is_issue_file(path) or (folder == ISSUES_DIR and name.startswith("ISSUE-")
                               and name.endswith(".comments.ndjson")):
        return FILE
    return None


def is_issue_file(path: str) -> bool:
    """`.floom/issues/ISSUE-*.md`: what the issues list reads (and a push parses)."""
    folder, _, name = path.rpartition("/")
    return folder == ISSUES_DIR and name.startswith("ISSUE-") and name.endswith(".md")


def must_be_file(path: str) -> bool:
    """Paths the workspace reads as files: no door puts a folder there."""
    return expected_kind(path) == FILE


def misplaced(path: str, kind: str = FILE) -> tuple[str, str] | None:
    """Where and why a `kind` (FILE or FOLDER) may not stand at `path`: (`where`, "must be ...")
    naming the path the workspace reads as the other kind, which is `path` itself or a folder
    above it that must be a file (None: it may stand there). Every door asks this of what it
    would commit: the API's writes (storage/changeset.admitted), a push, the disk sync."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        above = "/".join(parts[:i])
        if expected_kind(above) == FILE:
            return above, NOT_A_FOLDER
    expected = expected_kind(path)
    if expected is not None and expected != kind:
        return path, NOT_A_FOLDER if expected == FILE else NOT_A_FILE
    return None


def kind_refusal(path: str, kind: str = FILE) -> str | None:
    """misplaced() as the line every door shows: `<where>: must be a file, not a folder` (or
    `... a folder, not a file`)."""
    found = misplaced(path, kind)
    return f"{found[0]}: {found[1]}" if found else None


def is_secret_file(path: str) -> bool:
    return bool(SECRET_FILE_RE.search(path))


# Code points HFS+ ignores in names (git's utf8.c next_hfs_char): `.g\u200cit` is `.git` there.
HFS_IGNORABLE = frozenset(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)
# Names git refuses as symbolic links (a link there could redirect what git reads), with the
# prefix of their NTFS 8.3 short name (git's path.c is_ntfs_dot_generic).
LINK_REFUSED = {"gitmodules": "gi7eba", "gitattributes": "gi7d29", "gitignore": "gi250a",
                "mailmap": "maba30"}


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(name: str) -> str:
    """ASCII-only case folding, as git does (str.lower may change a name's length)."""
    return name.translate(_ASCII_LOWER)


def _hfs_is(name: str, needle: str) -> bool:
    """`name` reads as `.<needle>` on HFS+ (ignorable code points dropped, ASCII case folded)."""
    kept = name if name.isascii() else "".join(c for c in name if ord(c) not in HFS_IGNORABLE)
    return kept.isascii() and _lower(kept) == "." + needle


def _ntfs_blank(rest: str) -> bool:
    """NTFS drops trailing spaces and periods, and `:x` names an alternate stream of the file."""
    return all(c in " ." for c in rest.split(":", 1)[0])


def _ntfs_is_dotgit(name: str) -> bool:
    low = _lower(name)
    return any(low.startswith(p) and _ntfs_blank(name[len(p):]) for p in (".git", "git~1"))


def _ntfs_is_dot(name: str, needle: str, short: str) -> bool:
    """`name` reads as `.<needle>` on NTFS: the long name, its `xxxxxx~1`..`~4` short name, or
    the hashed fall-back short name `<short prefix>~<digits>` (git's is_ntfs_dot_generic)."""
    low = _lower(name)
    if low.startswith("." + needle):
        return _ntfs_blank(name[len(needle) + 1:])
    if low[:6] == needle[:6] and low[6:7] == "~" and low[7:8] in ("1", "2", "3", "4"):
        return _ntfs_blank(name[8:])
    i, saw_tilde = 0, False
    while i < 8:
        if i >= len(name):
            return False
        c = name[i]
        if saw_tilde:
            if not "0" <= c <= "9":
                return False
        elif c == "~":
            i += 1
            if name[i:i + 1] == "" or not "1" <= name[i] <= "9":
                return False
            saw_tilde = True
        elif i >= 6 or not c.isascii() or low[i] != short[i]:
            return False
        i += 1
    return _ntfs_blank(name[i:])


def git_refuses(segment: str, *, symlink: bool = False) -> bool:
    """True when git itself refuses `segment` as a path component (read-cache.c verify_path,
    fsck's hasDotgit): `.git` in any letter case, with HFS+-ignorable code points anywhere, or in
    an NTFS spelling (`.git.`, `.git `, `.git:x`, `git~1`); as a symlink also `.gitmodules`,
    `.gitattributes`, `.gitignore` and `.mailmap` in any of those spellings."""
    if _hfs_is(segment, "git") or _ntfs_is_dotgit(segment):
        return True
    if symlink:
        return any(_hfs_is(segment, n) or _ntfs_is_dot(segment, n, s)
                   for n, s in LINK_REFUSED.items())
    return False


_CONTROL = re.compile("[\x00-\x1f\x7f]")
_DRIVE = re.compile("[A-Za-z]:")


# A pure function of its arguments, asked about the same few paths on every commit (the
# changeset, the working-tree sync, its dry run): measured at a tenth of a commit's CPU uncached.
@functools.lru_cache(maxsize=4096)
def path_refusal(path: str, *, symlink: bool = False) -> str | None:
    """Why `path` may not enter a repository, phrased to follow the path, or None if it may.

    Refused: absolute, backslashes, NUL or control characters, text that is not valid UTF-8,
    empty, `.` or `..` segments, any segment git refuses (git_refuses), over-long names.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if len(path) > MAX_PATH_LEN:
        return f"is longer than {MAX_PATH_LEN} characters"
    if _CONTROL.search(path):
        return "contains a control or NUL character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/") or _DRIVE.match(path):
        return "is an absolute path"
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            return "has an empty, '.' or '..' segment"
        if git_refuses(seg, symlink=symlink):
            return ("has a segment git reads as .git (in some letter case, spelling or file "
                    "system); git refuses such paths")
        if len(seg) > MAX_SEGMENT_LEN:
            return f"has a segment longer than {MAX_SEGMENT_LEN} characters"
    return None


def clean_relpath(path: str, *, field: str = "path", symlink: bool = False) -> str:
    """Return `path` if it may enter a repository (path_refusal), else raise InvalidInput
    naming `field` and the path."""
    if not isinstance(path, str) or path == "":
        raise InvalidInput(f"{field}: must be a non-empty relative path")
    why = path_refusal(path, symlink=symlink)
    if why:
        shown = path[:80].encode("unicode_escape").decode("ascii")
        raise InvalidInput(f"{field}: '{shown}' {why}")
    return path


def is_clean_relpath(path: str) -> bool:
    return bool(path) and path_refusal(path, symlink=False) is None  # clean_relpath's cache key


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

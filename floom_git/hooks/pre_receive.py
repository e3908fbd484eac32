"""The server-owned pre-receive hook: `python -m floom_git.hooks.pre_receive`, run by
`git receive-pack` with the pushed objects still in quarantine. Exit 1 refuses the whole push;
what it prints reaches the pushing person as `remote:` lines."""

from __future__ import annotations

import os
import sys

import pygit2
from pygit2.enums import RepositoryOpenFlag

from floom_git.services.push import PushPolicy, format_rejection, parse_updates, validate_push


def main() -> int:
    try:
        policy = PushPolicy.from_env(os.environ)
        # FROM_ENV makes libgit2 honour GIT_OBJECT_DIRECTORY and the alternates git sets for
        # the quarantine; without it the pushed objects are invisible (ENGINEERING-NOTES §1.3).
        repo = pygit2.Repository(os.environ.get("GIT_DIR", "."), flags=RepositoryOpenFlag.FROM_ENV)
        problems = validate_push(repo, parse_updates(sys.stdin.read()), policy)
    except Exception as exc:  # noqa: BLE001  (fail closed: an unchecked push never lands)
        sys.stderr.write(f"push rejected: the server could not check this push ({exc!r})\n")
        return 1
    if problems:
        sys.stderr.write(format_rejection(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

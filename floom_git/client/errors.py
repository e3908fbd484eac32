"""What the client reports to a person: one-line errors and the exit codes they map to."""

from __future__ import annotations

OK = 0
ERROR = 1  # could not do what was asked: unreachable server, refused credential, bad input
USAGE = 2  # argparse's own code for a malformed command line
RUN_FAILED = 3
RUN_CANCELLED = 4
RUN_PENDING_APPROVAL = 5
INTERRUPTED = 130

RUN_EXIT = {"completed": OK, "failed": RUN_FAILED, "cancelled": RUN_CANCELLED,
            "pending_approval": RUN_PENDING_APPROVAL}


class ClientError(Exception):
    """A failure the person can act on; `message` is printed as `error: <message>`."""

    def __init__(self, message: str, code: int = ERROR, status: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the exit code
        self.status = status
        self.reason = reason  # the server's machine-readable error code (body `code`)

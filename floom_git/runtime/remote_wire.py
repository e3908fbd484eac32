"""What travels between a home node and a remote executor: the Celery task message, its sealed
ticket (AES-256-GCM under the shared FLOOM_EXECUTOR_KEY, bound to the run and attempt: the run
token, the secret values and everything the executor acts on), and the bodies of the executor's
reports to the home node.

The broker (and anything that reads or writes it) sees the workspace, run id, worker commit,
inputs and the *names* of the declared secrets, never a secret value or the token; a message
altered there cannot point an executor at other code or another home node."""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any, Literal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from floom_git.schemas.run import Artifact

TASK = "floom.run"  # the Celery task name
VERSION = 1
EXECUTOR_HEADER = "x-floom-executor"  # which delivery of the task is reporting
NONCE = 12


class Ticket(msgspec.Struct, forbid_unknown_fields=True):
    """Everything an executor acts on, sealed: it trusts nothing of the message outside it."""

    home: str  # base URL of the home node
    workspace: str  # its name (the git URL) ...
    workspace_uid: str  # ... and internal id
    run_id: str
    attempt: int
    worker_id: str
    worker_sha: str
    inputs: dict[str, Any]
    token: str  # the run token of this attempt
    claim_by: float  # epoch seconds: a delivery later than this is dropped (the home gave up)
    secrets: dict[str, str]  # values of the secrets the worker declares


class TaskMessage(msgspec.Struct, forbid_unknown_fields=True):
    """The Celery task's argument. Outside `sealed` only what operators may see in the broker."""

    v: int
    run_id: str
    attempt: int
    workspace: str
    worker_id: str
    worker_sha: str
    inputs: dict[str, Any]
    secret_names: list[str]
    sealed: str  # base64 of nonce + AES-GCM(Ticket), bound to run id and attempt


class Claimed(msgspec.Struct):
    """The home node's answer to a claim: how often to report, and when it gives up."""

    heartbeat_seconds: float
    lost_seconds: float


class Control(msgspec.Struct):
    cancel: bool


class LogLineIn(msgspec.Struct):
    level: Literal["debug", "info", "warning", "error", "critical"]
    message: str
    timestamp: str


class LogBatch(msgspec.Struct):
    first: int  # index of lines[0] in this attempt's log (a resent batch is not added twice)
    lines: list[LogLineIn]


class ResultIn(msgspec.Struct):
    status: Literal["completed", "failed", "cancelled"]
    outputs: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    exit_code: int | None = None
    artifacts: list[Artifact] = []
    decision_required: dict[str, Any] | None = None


def parse_key(value: str | None) -> bytes:
    """The 32-byte executor key from its base64 text; ValueError saying what is wrong."""
    if not value:
        raise ValueError("FLOOM_EXECUTOR_KEY is not set: the Celery executor needs a key shared "
                         "by the home nodes and the executors (make one with "
                         "`floom-git executor --new-key`)")
    try:
        key = base64.b64decode(value.strip() + "=" * (-len(value.strip()) % 4), altchars=b"-_",
                               validate=False)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError("FLOOM_EXECUTOR_KEY must be base64 of 32 random bytes (make one with "
                         "`floom-git executor --new-key`)")
    return key


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _aad(run_id: str, attempt: int) -> bytes:
    return f"floom-run:{run_id}:{attempt}".encode()


def task_message(key: bytes, ticket: Ticket) -> TaskMessage:
    nonce = os.urandom(NONCE)
    data = AESGCM(key).encrypt(nonce, msgspec.json.encode(ticket),
                               _aad(ticket.run_id, ticket.attempt))
    return TaskMessage(v=VERSION, run_id=ticket.run_id, attempt=ticket.attempt,
                       workspace=ticket.workspace, worker_id=ticket.worker_id,
                       worker_sha=ticket.worker_sha, inputs=ticket.inputs,
                       secret_names=sorted(ticket.secrets),
                       sealed=base64.b64encode(nonce + data).decode())


def unseal(key: bytes, message: TaskMessage) -> Ticket:
    """The ticket sealed in `message`; ValueError when it was not sealed under this key for
    this run and attempt."""
    try:
        raw = base64.b64decode(message.sealed, validate=True)
        plain = AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], _aad(message.run_id, message.attempt))
        ticket = msgspec.json.decode(plain, type=Ticket)
    except (binascii.Error, ValueError, InvalidTag, msgspec.DecodeError):
        raise ValueError(f"the task of run {message.run_id} was not sealed with this executor's "
                         "FLOOM_EXECUTOR_KEY") from None
    if (ticket.run_id, ticket.attempt) != (message.run_id, message.attempt):
        raise ValueError(f"the task of run {message.run_id} carries another run's ticket")
    return ticket


def encode_task(message: TaskMessage) -> dict[str, Any]:
    encoded: dict[str, Any] = msgspec.to_builtins(message)
    return encoded


def decode_task(data: Any) -> TaskMessage:
    return msgspec.convert(data, type=TaskMessage)

"""`floom-git serve|user|token` and the client commands (`login`, `workers`, `run`, ... in
floom_git/client/): the command line; the only reader of argv."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Mapping
from typing import IO

from floom_git import __version__, config, logs

# The server's own commands: for these the client's commands are not registered, so a server
# starts without importing the client (a sixth of its start-up before it listens).
SERVER_COMMANDS = frozenset({"serve", "executor", "user", "token"})


def main(argv: list[str] | None = None, *, environ: Mapping[str, str] | None = None,
         stdin: IO[str] | None = None, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
    """Parse argv and run the command. The keyword arguments replace the process's environment
    and standard streams for the client commands (tests run them in-process)."""
    parser = argparse.ArgumentParser(prog="floom-git", description="git-native workspace server "
                                     "and its command-line client")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--host", default=None,
                       help="bind address (env FLOOM_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (env FLOOM_PORT, default 8000)")
    serve.add_argument("--data-dir", default=None, help="data directory (env FLOOM_DATA_DIR)")
    executor = sub.add_parser("executor", help="run a Celery executor: takes runs from "
                              "FLOOM_CELERY_BROKER and reports them to their home nodes")
    executor.add_argument("--data-dir", default=None,
                          help="its own cache, environments and scratch dirs (env FLOOM_DATA_DIR)")
    executor.add_argument("--concurrency", type=int, default=None,
                          help="runs at once (env FLOOM_EXECUTOR_CONCURRENCY, default: cores)")
    executor.add_argument("--queue", default=None, help="Celery queue (env FLOOM_CELERY_QUEUE)")
    executor.add_argument("--name", default=None, help="Celery node name")
    executor.add_argument(
        "--new-key",
        action="store_true",
        help="print a new FLOOM_EXECUTOR_KEY (for home nodes and executors) and exit",
    )
    _identity_commands(sub)
    words = sys.argv[1:] if argv is None else argv
    if not words or words[0] not in SERVER_COMMANDS:
        from floom_git.client import main as client

        client.register(sub)
    args = parser.parse_args(argv)
    if getattr(args, "client_handler", None) is not None:
        from floom_git.client import main as client

        return client.run(args, environ=os.environ if environ is None else environ,
                          stdin=stdin or sys.stdin, stdout=stdout or sys.stdout,
                          stderr=stderr or sys.stderr)
    if args.command == "serve":
        return _serve(args)
    if args.command == "executor":
        return _executor(args)
    if args.command in ("user", "token"):
        return _identity(args)
    return 2


def _identity_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="manage local users (in <data-dir>/system)")
    users = user.add_subparsers(dest="action", required=True)
    add = users.add_parser("add",
                           help="create a user; prints a generated password unless one is given")
    add.add_argument("username")
    add.add_argument("--email", default=None)
    add.add_argument("--admin", action="store_true",
                     help="server administrator: owner of every workspace")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--workspace", default=None,
                     help="also make the user a member of this workspace")
    add.add_argument("--role", default="member", choices=("viewer", "member", "admin", "owner"))
    users.add_parser("list", help="list users")
    token = sub.add_parser("token", help="manage API tokens")
    tokens = token.add_subparsers(dest="action", required=True)
    create = tokens.add_parser("create", help="mint a token and print it once")
    create.add_argument("--user", required=True, help="user name or email of the token's owner")
    create.add_argument("--workspace", default=None,
                        help="a workspace token: acts only in this workspace")
    create.add_argument("--role", default=None, choices=("viewer", "member", "admin"),
                        help="workspace token role (default member) or a cap for a personal token")
    create.add_argument("--name", default="cli")
    create.add_argument("--expires-days", type=int, default=None)
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")
    for parser in (add, users.choices["list"], create, revoke):
        parser.add_argument("--data-dir", default=None, help="data directory (env FLOOM_DATA_DIR)")


def _identity(args: argparse.Namespace) -> int:
    """`user add|list` and `token create|revoke` straight on the system store (safe while the
    server runs: it is SQLite in WAL mode). Domain errors print `error: ...` and exit 1."""
    import getpass

    from floom_git.errors import FloomError, InvalidInput
    from floom_git.paths import check_workspace_id
    from floom_git.services.actor import ROLES
    from floom_git.services.identity import Identity
    from floom_git.services.identity.users import generate_password
    from floom_git.services.workspaces import read_uid

    settings = config.from_env(data_dir=args.data_dir)
    identity = Identity(settings.system_dir, password_profile=settings.argon2_profile)
    try:
        if args.command == "user" and args.action == "list":
            for u in identity.users.all():
                print(
                    f"{u.id}\t{u.username}\t{u.email or '-'}\t{'admin' if u.is_admin else 'user'}"
                )
            return 0
        workspace = getattr(args, "workspace", None)
        uid = (
            read_uid(settings.workspaces_dir / check_workspace_id(workspace)) if workspace else None
        )
        if workspace and uid is None:
            raise InvalidInput(
                f"workspace: {workspace} does not exist in {settings.workspaces_dir}"
            )
        if args.command == "user":
            generated = None
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            elif sys.stdin.isatty():
                password = getpass.getpass("Password: ")
                if getpass.getpass("Repeat: ") != password:
                    raise InvalidInput("password: the two entries differ")
            else:
                password = generated = generate_password()
            user = identity.users.create(args.username, email=args.email, password=password,
                                         is_admin=args.admin)
            if uid:
                identity.members.add(uid, user.id, args.role)
            print(
                f"created user {user.username} ({user.id})"
                + (" as server admin" if args.admin else ""),
                file=sys.stderr,
            )
            if generated:
                print(f"password: {generated}")
            return 0
        if args.action == "revoke":
            row = identity.tokens.revoke(args.token_id)
            print(f"revoked {row.id} ({row.name})", file=sys.stderr)
            return 0
        user = identity.users.find(args.user)
        if uid:
            own = identity.members.role(uid, user)
            role = args.role or "member"
            if own is None or ROLES.index(own) < ROLES.index(role):
                raise InvalidInput(
                    f"role: {user.username} is {own or 'not a member'} in {workspace}; "
                    f"cannot mint a {role} token there"
                )
            value, row = identity.tokens.mint(user_id=user.id, kind="workspace", name=args.name,
                                              workspace_id=uid, role=role,
                                              expires_days=args.expires_days)
        else:
            value, row = identity.tokens.mint(user_id=user.id, kind="personal", name=args.name,
                                              role=args.role, expires_days=args.expires_days)
        print(
            f"token {row.id} for {user.username}"
            + (f" in workspace {workspace}" if workspace else "")
            + " (shown once; store it now)",
            file=sys.stderr,
        )
        print(value)
        return 0
    except FloomError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        identity.close()


def _executor(args: argparse.Namespace) -> int:
    from floom_git.runtime import remote_wire
    from floom_git.runtime.celery_app import run_worker

    if args.new_key:
        print(remote_wire.new_key())
        return 0
    try:
        settings = config.from_env(data_dir=args.data_dir, celery_queue=args.queue,
                                   executor_concurrency=args.concurrency)
        logs.setup(settings.log_format, settings.log_level)
        run_worker(settings, args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve(args: argparse.Namespace) -> int:
    # The cyclic GC kept scanning the objects the server's modules make while they were being
    # made (a tenth of a start-up); serve() freezes them and turns it back on.
    gc.disable()
    from floom_git.serve import serve

    try:
        settings = config.from_env(host=args.host, port=args.port, data_dir=args.data_dir)
    except ValueError as exc:  # a malformed FLOOM_* value: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(settings)

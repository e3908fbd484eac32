"""The client's commands, one module per noun. Each module's `register(sub)` adds its argparse
sub-commands; each command is `async def handler(ctx, args) -> exit code`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from floom_git.client.api import Api
from floom_git.client.config import Store, Target
from floom_git.client.errors import ClientError
from floom_git.client.output import Output


@dataclass
class Ctx:
    api: Api
    out: Output
    store: Store
    target: Target
    environ: Mapping[str, str]
    stdin: IO[str]


Handler = Callable[[Ctx, argparse.Namespace], Awaitable[int]]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--server", metavar="URL", default=None,
                       help="server URL (env FLOOM_URL; default: the one you logged in to, "
                            "else http://localhost:8000)")
    group.add_argument(
        "--workspace",
        "-w",
        metavar="ID",
        default=None,
        help="workspace to act in (env FLOOM_WORKSPACE; default: `workspaces switch`)",
    )
    group.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    return common


COMMON = _common()


def command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler,
            help: str,
            **kw: Any) -> argparse.ArgumentParser:
    """A leaf command with the shared --server/--workspace/--json options."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help,
                                                     parents=[COMMON], **kw)
    parser.set_defaults(client_handler=handler)
    return parser


def group(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
          help: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = sub.add_parser(name, help=help, description=help)
    actions: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest=f"{name}_action", required=True, metavar="ACTION")
    return actions


def seg(value: str) -> str:
    """A path segment from user input, so `a/b` or `?` cannot change which route is hit."""
    return quote(value, safe="")


def query(**values: Any) -> dict[str, str]:
    """Query parameters from options, leaving out those not given (None or False)."""
    return {k: "true" if v is True else str(v) for k,
            v in values.items() if v is not None and v is not False}


def json_object(where: str, read: Callable[[], str]) -> dict[str, Any]:
    """The JSON object `read()` returns (from a file, stdin or an argument); a ClientError
    naming `where` when it cannot be read, does not parse or is not an object."""
    try:
        value = json.loads(read())
    except OSError as exc:
        raise ClientError(f"{where}: {exc.strerror}") from None
    except ValueError as exc:
        raise ClientError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ClientError(f"{where}: expected a JSON object")
    return value


def outputs_of(run: Mapping[str, Any]) -> Any:
    """The run's outputs: `outputs`, or `output` (servers with either shape)."""
    value = run.get("outputs")
    return value if value is not None else run.get("output")

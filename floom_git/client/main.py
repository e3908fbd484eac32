"""The client's entry: adds its commands to the `floom-git` parser, and runs one of them with the
target resolved, one HTTP session open, and every ClientError turned into `error: ...` + code."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
from collections.abc import Mapping
from typing import IO, Any

from floom_git.client.api import Api
from floom_git.client.commands import Ctx, approvals, auth, issues, mcp, runs, workers, workspaces
from floom_git.client.config import Store, config_dir, resolve
from floom_git.client.errors import ERROR, INTERRUPTED, ClientError
from floom_git.client.output import Output

MODULES = (auth, workspaces, workers, runs, approvals, issues, mcp)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for module in MODULES:
        module.register(sub)


async def _dispatch(args: argparse.Namespace, ctx_parts: dict[str, Any]) -> int:
    async with Api(ctx_parts["target"]) as api:
        code: int = await args.client_handler(Ctx(api=api, **ctx_parts), args)
        return code


def run(args: argparse.Namespace, *, environ: Mapping[str, str], stdin: IO[str], stdout: IO[str],
        stderr: IO[str]) -> int:
    out = Output(stdout, stderr, environ, as_json=args.json)
    try:
        store = Store(config_dir(environ))
        target = resolve(environ, store, server=args.server, workspace=args.workspace)
        parts = {"out": out, "store": store, "target": target, "environ": environ, "stdin": stdin}
        return asyncio.run(_dispatch(args, parts))
    except ClientError as exc:
        out.error(exc.message)
        return exc.code
    except KeyboardInterrupt:
        out.note("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        _silence(stdout)  # the reader went away (`| head`): stop quietly, like other tools
        return ERROR


def _silence(stream: IO[str]) -> None:
    """Point a closed pipe at /dev/null so the interpreter's final flush does not fail too."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)

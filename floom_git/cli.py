"""`floom-git serve|init`: the command line; the only reader of argv."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from floom_git import __version__, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floom-git", description="git-native workspace server")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the HTTP server")
    serve.add_argument("--host", default=None, help="bind address (env FLOOM_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (env FLOOM_PORT, default 8000)")
    serve.add_argument("--data-dir", default=None, help="data directory (env FLOOM_DATA_DIR)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from floom_git.http.app import create_app
    from floom_git.services.auth import load_or_create_secret

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = config.from_env(host=args.host, port=args.port, data_dir=args.data_dir)
    app = create_app(settings)
    base = f"http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0') else settings.host}:{settings.port}"
    if settings.secret:
        how = "x-floom-secret: $FLOOM_SECRET (the value you set)"
        secret_hint = "$FLOOM_SECRET"
    else:
        secret_hint = load_or_create_secret(settings.system_dir)
        how = f"x-floom-secret: {secret_hint}  (stored in {settings.system_dir / 'shared-secret'})"
    print(f"floom-git {__version__} serving {settings.data_dir}", file=sys.stderr)
    print(f"  API:      {base}/api   (docs: {base}/docs)", file=sys.stderr)
    print(f"  Auth:     {how}", file=sys.stderr)
    print(f"  Try:      curl -H 'x-floom-secret: {secret_hint}' {base}/api/workers", file=sys.stderr)
    print(f"  Clone:    git clone http://floom:{secret_hint}@{base.split('://', 1)[1]}/git/default.git",
          file=sys.stderr)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0

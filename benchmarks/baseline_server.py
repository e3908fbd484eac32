"""The baseline for API writes: what a subprocess-git server does. `PUT /api/contexts/{name}/
files/{path}` writes the file into a checkout, then runs `git add` and `git commit`, one write at
a time under a lock. Run as `python -m benchmarks.baseline_server --repo DIR --port P`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web

REPO = web.AppKey("repo", Path)
LOCK = web.AppKey("lock", asyncio.Lock)


async def _git(repo: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(repo),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise web.HTTPInternalServerError(text=err.decode(errors="replace"))


async def put_file(request: web.Request) -> web.Response:
    repo = request.app[REPO]
    name, path = request.match_info["name"], request.match_info["path"]
    rel = f"contexts/{name}/{path}"
    data = await request.read()
    async with request.app[LOCK]:
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        await _git(repo, "add", "--", rel)
        await _git(repo, "commit", "-q", "-m", f"context {name}: update {path}")
    return web.json_response({"path": path, "changed": True})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app[REPO] = Path(args.repo)
    app[LOCK] = asyncio.Lock()
    app.router.add_get("/healthz", healthz)
    app.router.add_put("/api/contexts/{name}/files/{path:.+}", put_file)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

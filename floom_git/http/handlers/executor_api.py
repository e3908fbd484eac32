"""Routes a remote executor reports one run through (perm `run`: only that run's run token, see
http/middleware.py): claim, heartbeat (answers whether to cancel), log lines, artifacts and the
result. Each request names its delivery (x-floom-executor) and attempt (x-floom-attempt); only
the delivery that claimed the attempt is heard. The home node alone writes the run record."""

from __future__ import annotations

from aiohttp import web

from floom_git.errors import InvalidInput
from floom_git.http import wire
from floom_git.http.handlers.common import settings
from floom_git.http.keys import REMOTE_RUNS
from floom_git.runtime.remote_wire import (
    EXECUTOR_HEADER,
    Claimed,
    Control,
    LogBatch,
    ResultIn,
)

ATTEMPT_HEADER = "x-floom-attempt"
MAX_LOG_BATCH_BYTES = 4 * 1024 * 1024


def _who(request: web.Request) -> tuple[str, int, str]:
    """(run id, attempt, executor) of a report; 400 naming the missing header."""
    executor = request.headers.get(EXECUTOR_HEADER, "").strip()
    if not executor or len(executor) > 200:
        raise InvalidInput(
            f"{EXECUTOR_HEADER}: required (the delivery's id, at most 200 characters)"
        )
    try:
        attempt = int(request.headers.get(ATTEMPT_HEADER, ""))
    except ValueError:
        raise InvalidInput(f"{ATTEMPT_HEADER}: required (the attempt number)") from None
    return request.match_info["id"], attempt, executor


async def claim(request: web.Request) -> web.Response:
    run_id, attempt, executor = _who(request)
    request.app[REMOTE_RUNS].claim(run_id, attempt, executor)
    s = settings(request)
    return wire.json(Claimed(heartbeat_seconds=s.executor_heartbeat_seconds,
                             lost_seconds=s.executor_lost_seconds))


async def heartbeat(request: web.Request) -> web.Response:
    run_id, attempt, executor = _who(request)
    hold = settings(request).executor_heartbeat_seconds
    stop = await request.app[REMOTE_RUNS].heartbeat(run_id, attempt, executor, hold)
    return wire.json(Control(cancel=stop))


async def logs(request: web.Request) -> web.Response:
    run_id, attempt, executor = _who(request)
    batch = await wire.decode(request, LogBatch, MAX_LOG_BATCH_BYTES)
    count = request.app[REMOTE_RUNS].logs(run_id, attempt, executor, batch)
    return wire.json({"lines": count})


async def artifact(request: web.Request) -> web.Response:
    run_id, attempt, executor = _who(request)
    remote = request.app[REMOTE_RUNS]
    rel = wire.path_param(request, "path")
    data = await wire.read_body(request, remote.max_artifact_bytes)
    remote.artifact(run_id, attempt, executor, rel, data)
    return wire.json({"path": rel, "size_bytes": len(data)})


async def result(request: web.Request) -> web.Response:
    run_id, attempt, executor = _who(request)
    body = await wire.decode(request, ResultIn, settings(request).run_max_result_bytes + 65536)
    request.app[REMOTE_RUNS].result(run_id, attempt, executor, body)
    return wire.json({"run_id": run_id, "status": body.status})

"""Route-table entries: git smart HTTP, health details, metrics, the remote executors' API, and
the workspace freeze."""

from __future__ import annotations

from floom_git.http import git_http, metrics
from floom_git.http.handlers import executor_api, freeze, health
from floom_git.http.route import Route
from floom_git.runtime.remote_wire import Claimed, Control, LogBatch, ResultIn
from floom_git.schemas.health import FreezeBody, FreezeStatus, HealthDetails


def git_http_routes() -> list[Route]:
    out = []
    for suffix in (".git", ""):
        base = "/git/{ws}" + suffix
        out += [
            Route(
                "GET",
                base + "/info/refs",
                git_http.info_refs,
                "git",
                "git smart HTTP: ref advertisement (?service=git-upload-pack|git-receive-pack); "
                "HTTP Basic auth, password = API token or shared secret",
                "git",
                content_type="application/x-git-upload-pack-advertisement",
                aliases=False,
                query=(("service", "string", "which service",
                        {"enum": ["git-upload-pack", "git-receive-pack"]}),),
                extra={"also": {"application/x-git-receive-pack-advertisement": None}},
            ),
            Route(
                "POST",
                base + "/git-upload-pack",
                git_http.upload_pack,
                "git",
                "git smart HTTP: fetch/clone (needs read access)",
                "git",
                content_type="application/x-git-upload-pack-result",
                aliases=False,
                extra={"raw_body": ("application/x-git-upload-pack-request",), "errors": (415,)},
            ),
            Route(
                "POST",
                base + "/git-receive-pack",
                git_http.receive_pack,
                "git",
                "git smart HTTP: push, validated before any ref moves (needs write access)",
                "git",
                content_type="application/x-git-receive-pack-result",
                aliases=False,
                extra={"raw_body": ("application/x-git-receive-pack-request",), "errors": (415,)},
            ),
        ]
    return out


def health_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/health/details",
            health.details,
            "ops",
            "Disk space (server admins), run sandbox, and the mirror, repository and scheduler "
            "state of each workspace you administer",
            "system",
            response=HealthDetails,
        ),
    ]


def metrics_routes() -> list[Route]:
    return [
        Route("GET", "/metrics", metrics.metrics_handler, "ops",
              "Prometheus metrics: commits, pushes, runs by status and watcher lag of each "
              "workspace you administer; requests and latency by route, run queue depth, asyncio "
              "tasks, process memory and fds for server admins",
              "system", content_type="text/plain"),
    ]


def executor_api_routes() -> list[Route]:
    r = "executor"
    base = "/runs/{id}/executor"
    return [
        Route("POST", f"{base}/claim", executor_api.claim, "run",
              "Claim an attempt of a run (the first delivery wins; 409 for a duplicate)", r,
              response=Claimed),
        Route("POST", f"{base}/heartbeat", executor_api.heartbeat, "run",
              "The executor is alive; answers (at once, or after a short hold) whether to cancel",
              r, response=Control),
        Route("POST", f"{base}/logs", executor_api.logs, "run", "Append log lines of the run", r,
              body=LogBatch, response=dict),
        Route("PUT", base + "/artifacts/{path:.+}", executor_api.artifact, "run",
              "Upload one artifact of the run (raw bytes, path under out/)", r, response=dict,
              extra={"raw_body": True}),
        Route("POST", f"{base}/result", executor_api.result, "run", "Report how the run ended", r,
              body=ResultIn, response=dict),
    ]


def freeze_routes() -> list[Route]:
    extra = {"workspace_param": "id", "while_frozen": True}
    doc = "Freeze a workspace for a move: every write answers 503 with Retry-After until unfrozen"
    return [
        Route("GET", "/workspaces/{id}/freeze", freeze.get_freeze, "owner",
              "Whether the workspace is frozen and ready to move (no active run, fully mirrored)",
              "workspaces", response=FreezeStatus, extra=extra),
        Route("POST", "/workspaces/{id}/freeze", freeze.put_freeze, "owner", doc, "workspaces",
              body=FreezeBody, response=FreezeStatus, extra={**extra, "body_optional": True}),
        Route("DELETE", "/workspaces/{id}/freeze", freeze.delete_freeze, "owner",
              "Unfreeze: writes are accepted again (on-disk edits made meanwhile are committed)",
              "workspaces", response=FreezeStatus, extra=extra),
    ]

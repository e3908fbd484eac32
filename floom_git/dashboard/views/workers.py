"""Worker pages: the list (status, last run, triggers), a worker (stats chart, files, triggers,
webhook), a file with highlighting, versions with a diff between any two, and the writes:
create from a form, pause, resume, roll back, new webhook URL."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import call
from floom_git.dashboard.chart import runs_chart
from floom_git.dashboard.code import diff, highlighted
from floom_git.dashboard.render import redirect, render
from floom_git.errors import FloomError, NotFound
from floom_git.http.handlers import automation
from floom_git.http.handlers import workers as api
from floom_git.http.handlers.common import workspace
from floom_git.schemas.api import WorkerCreate
from floom_git.services import run_views
from floom_git.services.workspaces import Workspace

STARTER_YML = """schema_version: "0.3"
name: shout
title: Shout
description: Repeats a text in capitals.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: text
      type: string
      required: true
      description: What to shout.
  outputs:
    - name: shouted
      type: string
"""
STARTER_PY = """import json

inputs = json.load(open("inputs.json"))
print("shouting", len(inputs["text"]), "characters")
result = {"status": "success", "outputs": {"shouted": inputs["text"].upper()}}
json.dump(result, open("result.json", "w"))
"""


def trigger_labels(ws: Workspace, worker_id: str) -> list[str]:
    """How a worker starts: manual, webhook, or a schedule with its cron and time zone."""
    entry = ws.workers.get(worker_id)
    if entry is None or entry.manifest is None:
        return []
    labels = []
    for t in entry.manifest.all_triggers:
        if t.cron or t.every or t.at:
            when = t.cron or t.every or t.at
            labels.append(f"schedule {when}" + (f" ({t.timezone})" if t.timezone else ""))
        else:
            labels.append("schedule" if t.type in ("cron", "scheduled") else t.type)
    return labels


def _last_run(ws: Workspace, worker_id: str) -> Any:
    page, _ = run_views.list_runs(ws, run_views.RunQuery(worker_id=worker_id, limit=1))
    return page[0] if page else None


async def list_workers(request: web.Request) -> web.Response:
    items = await call(request, api.list_workers)
    ws = workspace(request)
    rows = [{"w": w, "last": _last_run(ws, w["id"]), "triggers": trigger_labels(ws, w["id"])}
            for w in items]
    return render(request, "workers.html", rows=rows, q=request.query.get("q", ""),
                  status=request.query.get("status", ""))


async def worker(request: web.Request) -> web.Response:
    w = await call(request, api.get_worker)
    ws = workspace(request)
    stats = await call(request, automation.worker_stats)
    points = await call(request, automation.worker_timeseries)
    recent, _ = run_views.list_runs(ws, run_views.RunQuery(worker_id=w["id"], limit=8))
    manifest = next((f for f in w["files"] if f["path"] == "worker.yml"), None)
    triggers = trigger_labels(ws, w["id"])
    return render(request, "worker.html", w=w, stats=stats, chart=runs_chart(points),
                  recent=recent, triggers=triggers, has_webhook="webhook" in triggers,
                  manifest_html=highlighted("worker.yml",
                                            manifest["content"]) if manifest else None)


async def worker_file(request: web.Request) -> web.Response:
    w = await call(request, api.get_worker)
    path = request.match_info["path"]
    file = next((f for f in w["files"] if f["path"] == path), None)
    if file is None:
        raise NotFound(f"{path}: no such file in worker {w['id']}")
    code = None if file["binary"] else highlighted(path, file.get("content") or "")
    return render(request, "file.html", w=w, file=file, code=code)


async def versions(request: web.Request) -> web.Response:
    """The worker's history; `from` and `to` pick two versions to compare (default: the last
    change)."""
    w = await call(request, api.get_worker)
    items = await call(request, api.list_versions)
    shas = [v["sha"] for v in items]
    new = request.query.get("to") or (shas[0] if shas else None)
    old = request.query.get("from") or (shas[1] if len(shas) > 1 else None)
    changes = None
    if old and new:
        before = await call(request, api.version_files, params={"sha": old})
        after = await call(request, api.version_files, params={"sha": new})
        changes = diff(before["files"], after["files"], before["sha"], after["sha"])
        old, new = before["sha"], after["sha"]
    return render(request, "versions.html", w=w, versions=items, old=old, new=new, changes=changes)


async def new_form(request: web.Request) -> web.Response:
    return render(request, "worker_new.html", worker_yml=STARTER_YML, run_py=STARTER_PY, error=None)


async def create(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    worker_yml = forms.text(form, "worker_yml", 1_000_000)
    run_py = forms.text(form, "run_py", 5_000_000)
    try:
        made = await call(request, api.create_worker,
                          WorkerCreate(worker_yml=worker_yml, run_py=run_py or None))
    except FloomError as exc:
        return render(request, "worker_new.html", http_status=400, worker_yml=worker_yml,
                      run_py=run_py, error=exc.message)
    raise redirect(f"/ui/workers/{made['id']}", f"Created worker {made['id']}.")


def _action(handler: Any, done: str) -> Any:
    async def view(request: web.Request) -> web.StreamResponse:
        w = await call(request, handler)
        raise redirect(f"/ui/workers/{w['id']}", done.format(**w))

    view.__name__ = f"worker_{handler.__name__}"
    return view


pause = _action(api.pause, "Paused {id}: it starts no new runs.")
resume = _action(api.resume, "Resumed {id}.")


async def rollback(request: web.Request) -> web.StreamResponse:
    w = await call(request, api.rollback)
    raise redirect(
        f"/ui/workers/{w['id']}/versions",
        f"Restored {w['id']} as of {request.match_info['sha'][:7]} (a new version {w['sha']}).",
    )


async def new_webhook(request: web.Request) -> web.Response:
    """A new webhook URL and signing secret, shown this once."""
    w = await call(request, api.get_worker)
    secret = await call(request, automation.rotate_secret)
    return render(request, "webhook.html", w=w, secret=secret)

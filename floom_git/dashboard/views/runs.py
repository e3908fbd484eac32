"""Run pages: the run form generated from a worker's declared inputs, the runs list with
filters, and a run (status, logs, outputs, artifacts) that follows the run's SSE stream while
it is live; cancel."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import call
from floom_git.dashboard.render import redirect, render
from floom_git.errors import FloomError
from floom_git.http.handlers import runs as api
from floom_git.http.handlers import workers as workers_api
from floom_git.http.keys import ANSWER
from floom_git.schemas.run import STATUSES, TERMINAL, RunCreate

PAGE_SIZE = 50


def _widget(field: dict[str, Any]) -> str:
    """The form control for a declared input."""
    kind = field.get("type") or "string"
    if field.get("kind") == "file":
        return "text"
    if field.get("enum") or field.get("options"):
        return "select"
    return {"textarea": "textarea", "text": "textarea", "json": "json", "boolean": "boolean",
            "number": "number", "integer": "number", "url": "url", "date": "date"}.get(kind, "text")


def _choices(field: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for option in field.get("enum") or field.get("options") or []:
        if isinstance(option, dict):
            out.append({"value": str(option.get("value")),
                        "label": str(option.get("label") or option.get("value"))})
        else:
            out.append({"value": str(option), "label": str(option)})
    return out


def _form_fields(w: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
    example = w.get("example_input") or {}
    out = []
    for field in w.get("inputs") or []:
        name = field["name"]
        default = field.get("default")
        placeholder = field.get("placeholder") or (str(example[name]) if name in example else "")
        out.append({**field, "widget": _widget(field), "choices": _choices(field),
                    "value": given.get(name, "" if default is None else str(default)),
                    "placeholder": placeholder})
    return out


async def run_form(request: web.Request) -> web.Response:
    w = await call(request, workers_api.get_worker)
    return render(request, "run_form.html", w=w, fields=_form_fields(w, {}), error=None)


async def start(request: web.Request) -> web.StreamResponse:
    w = await call(request, workers_api.get_worker)
    form = await forms.fields(request)
    given = {f["name"]: forms.text(form, forms.INPUT_PREFIX + f["name"], 1_000_000)
             for f in w.get("inputs") or []}
    try:
        inputs = forms.run_inputs(w.get("inputs") or [], form)
        made = await call(request, api.create_run, RunCreate(inputs=inputs))
    except FloomError as exc:
        return render(request, "run_form.html", http_status=400, w=w, fields=_form_fields(w, given),
                      error=exc.message)
    raise redirect(f"/ui/runs/{made['run_id']}", f"Started run {made['run_id']}.")


async def list_runs(request: web.Request) -> web.Response:
    items = await call(request, api.list_runs)
    total = int(request[ANSWER].headers.get("X-Total-Count", len(items)))
    offset = int(request.query.get("offset") or 0)
    return render(request, "runs.html", items=items, total=total, offset=offset,
                  page_size=int(request.query.get("limit") or PAGE_SIZE), statuses=STATUSES,
                  worker_id=request.query.get("worker_id", ""),
                  status=request.query.get("status", ""),
                  live=any(r["status"] not in TERMINAL for r in items),
                  request_query=request.query_string)


async def run(request: web.Request) -> web.Response:
    r = await call(request, api.get_run)
    last_seq = max([line["seq"] for line in r.get("logs", [])] + [0])
    live = r["status"] not in TERMINAL
    return render(request, "run.html", r=r, live=live, last_seq=last_seq)


async def cancel(request: web.Request) -> web.StreamResponse:
    done = await call(request, api.cancel_run)
    raise redirect(f"/ui/runs/{done['run_id']}", f"Run {done['run_id']}: {done['status']}.")

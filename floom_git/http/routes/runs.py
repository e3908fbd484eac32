"""Route-table entries: Runs, approvals, webhooks, alerts and run stats."""

from __future__ import annotations

from floom_git.http.handlers import automation, runs
from floom_git.http.handlers.runs import CURSOR, RUN_FILTERS
from floom_git.http.route import OFFSET, PAGE, WHEN, Route, limit
from floom_git.schemas import run as schema


def automation_routes() -> list[Route]:
    w, r, s = "workers", "runs", "system"
    return [
        Route("GET", "/runs/export.csv", automation.export_csv, "read", "Export runs as CSV", r,
              content_type="text/csv",
              query=(limit("rows (default 1000, at most 10000)"), OFFSET) + RUN_FILTERS,
              extra={"validates": CURSOR}),
        Route("POST", "/webhooks/{worker_id}", automation.webhook, "public",
              "Start a run from a webhook (?token= or X-Floom-Signature; X-Request-ID dedups)",
              "webhooks", response=schema.WebhookAccepted,
              query=(("token", "string", "the worker's webhook URL token"),
                     ("workspace", "string", "workspace id (default: default)")),
              extra={"errors": (401,)}),
        Route("POST", "/workers/{id}/webhook-secret/rotate", automation.rotate_secret, "write",
              "New webhook secret (shown once)", w, response=schema.WebhookSecret),
        Route("GET", "/workers/{id}/alerts", automation.list_alerts, "read",
              "List the worker's alerts", w,
              response=list[schema.Alert]),
        Route("POST", "/workers/{id}/alerts", automation.create_alert, "write",
              "Create an alert: a URL (signed POST; the secret is shown once) and/or "
              "email_to (SMTP), "
              "on failed, completed or approval_required", w, body=schema.AlertCreate,
              response=schema.Alert, status=201,
              extra={"validates": "url must be a public http(s) URL; email_to needs "
                                  "FLOOM_SMTP_URL"}),
        Route("DELETE", "/workers/{id}/alerts/{alert_id}", automation.delete_alert, "write",
              "Delete an alert",
              w, status=204),
        Route("GET", "/workers/{id}/stats", automation.worker_stats, "read",
              "Run stats of a worker", w,
              response=schema.WorkerStats),
        Route("GET", "/workers/{id}/runs/timeseries", automation.worker_timeseries, "read",
              "Daily run counts, zero-filled", w, response=list[schema.TimeseriesPoint],
              query=(("days", "integer", "default 30", {"minimum": 1, "maximum": 90}),)),
        Route("GET", "/workers/{id}/logs", automation.worker_logs, "read",
              "Log lines across the worker's runs",
              w, response=list[schema.WorkerLogLine],
              query=(("level", "string", "minimum level", {"enum": list(schema.LEVELS)}),
                     ("since", "string", "ISO-8601", WHEN),
                     limit("at most 1000 (default 200)"))),
        Route("GET", "/system/overview", automation.system_overview, "read",
              "Workspace overview: run counts, recent runs, alerts", s, response=schema.Overview),
    ]


def runs_routes() -> list[Route]:
    r, a = "runs", "approvals"
    levels = {"enum": list(schema.LEVELS)}
    optional_body = {"body_optional": True}  # an empty body means the defaults
    run_filters = (limit("page size (default 50, at most 200)"), OFFSET) + RUN_FILTERS
    resume = (("last_event_id", "integer", "resume after this event id (or Last-Event-ID)",
               {"minimum": 0}),)
    return [
        Route("POST", "/workers/{id}/runs", runs.create_run, "write", "Trigger a run", r,
              body=schema.RunCreate, response=schema.RunCreated,
              extra={**optional_body, "validates": "inputs must fit the worker's declared inputs"}),
        Route("GET", "/runs", runs.list_runs, "read", "List runs (X-Total-Count)", r,
              response=list[schema.RunSummary], query=run_filters,
              extra={"validates": CURSOR, "total_count": True}),
        Route("GET", "/runs/{id}", runs.get_run, "read", "Run detail", r,
              response=schema.RunDetail),
        Route("POST", "/runs/{id}/cancel", runs.cancel_run, "write",
              "Cancel a queued or running run", r,
              response=schema.CancelResult),
        Route("GET", "/runs/{id}/logs", runs.run_logs, "read",
              "Run logs: NDJSON, or a JSON array with Accept: application/json", r,
              content_type="application/x-ndjson",
              extra={"also": {"application/json": list[schema.LogLine]}},
              query=(("level", "string", "minimum level", levels),
                     limit("at most this many lines (default 1000, at most 100000)"))),
        Route("GET", "/runs/{id}/events", runs.run_events, "read",
              "SSE: status, log, approval_decided and close events (an agent run's also "
              "turn_start, text_delta and tool_call_start as they happen)", r,
              content_type="text/event-stream", query=resume),
        Route("GET", "/runs/{id}/logs/stream", runs.run_log_stream, "read", "SSE: log lines", r,
              content_type="text/event-stream", query=resume),
        Route("GET", "/runs/{id}/stream", runs.run_parts, "read",
              "SSE: run parts (step-start, text, text-delta, tool-call, tool-result, finish)",
              r, content_type="text/event-stream", query=resume),
        Route("GET", "/runs/{id}/download", runs.download_run, "read", "The run as a ZIP", r,
              content_type="application/zip"),
        Route("GET", "/runs/{id}/artifacts/{artifact_id}/download", runs.download_artifact, "read",
              "Download one artifact", r, content_type="*/*"),  # the artifact's own type
        Route("POST", "/runs/{id}/approve", runs.approve_run, "write",
              "Approve a pending run (starts the follow-up run; an agent's own run resumes)", a,
              body=schema.ApproveBody,
              response=schema.Decision, extra=optional_body),
        Route("POST", "/runs/{id}/reject", runs.reject_run, "write",
              "Reject a pending run (it fails; an agent's run resumes, told why)", a,
              body=schema.RejectBody, response=schema.Decision, extra=optional_body),
        Route("GET", "/approvals", runs.list_approvals, "read",
              "List approvals (default: pending)", a,
              response=list[schema.ApprovalOut], extra={"total_count": True},
              query=PAGE + (("status", "string", "default pending",
                             {"enum": ["pending", "approved", "rejected", "expired", "cancelled",
                                       "all"]}),
                            ("run_id", "string", "only this run's approval"))),
        Route("GET", "/approvals/count", runs.count_approvals, "read", "Count pending approvals", a,
              response=schema.ApprovalCount),
        Route("POST", "/approvals/{approval_id}/approve", runs.approve_by_id, "write",
              "Approve by approval id", a, body=schema.ApproveBody, response=schema.Decision,
              extra=optional_body),
        Route("POST", "/approvals/{approval_id}/reject", runs.reject_by_id, "write",
              "Reject by approval id", a, body=schema.RejectBody, response=schema.Decision,
              extra=optional_body),
    ]

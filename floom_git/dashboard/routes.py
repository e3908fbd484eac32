"""Every dashboard URL in one table, and `setup(app)`: the Jinja environment, the static files
(the CSS and script written here, and the pinned vendored htmx and Swagger UI) and the pages.
Pages are HTML for people, not API routes: they are left out of /openapi.json, and PAGES lists
them so the spec test can tell the two apart."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from floom_git.dashboard import docs
from floom_git.dashboard.pages import Page, wrap
from floom_git.dashboard.render import environment
from floom_git.dashboard.views import (
    approvals,
    auth,
    contexts,
    home,
    issues,
    runs,
    settings,
    workers,
)
from floom_git.http.keys import PAGES_KEY

STATIC = "/ui/static"

PAGES: list[Page] = [
    Page("GET", "/", home.root, None),
    Page("GET", "/docs", docs.docs, None),
    Page("GET", "/ui/", home.overview),
    Page("POST", "/ui/workspaces/select", home.select, "user"),
    # signing in
    Page("GET", "/ui/login", auth.login_form, None),
    Page("POST", "/ui/login", auth.login, None),
    Page("POST", "/ui/login/magic", auth.magic_paste, None),
    Page("GET", "/ui/magic/{token}", auth.magic_confirm, None),
    Page("POST", "/ui/magic/{token}", auth.magic_use, None),
    Page("POST", "/ui/logout", auth.logout, None),
    Page("GET", "/ui/account", auth.account, "user"),
    Page("POST", "/ui/account/magic-link", auth.new_magic_link, "user"),
    Page("GET", "/ui/device", auth.device_page, "user"),  # the URL `floom-git login` prints
    Page("POST", "/ui/device", auth.device_decide, "user"),
    # workers
    Page("GET", "/ui/workers", workers.list_workers),
    Page("GET", "/ui/new/worker", workers.new_form, "write"),
    Page("POST", "/ui/new/worker", workers.create, "write"),
    Page("GET", "/ui/workers/{id}", workers.worker),
    Page("GET", "/ui/workers/{id}/files/{path:.+}", workers.worker_file),
    Page("GET", "/ui/workers/{id}/versions", workers.versions),
    Page("POST", "/ui/workers/{id}/pause", workers.pause, "write"),
    Page("POST", "/ui/workers/{id}/resume", workers.resume, "write"),
    Page("POST", "/ui/workers/{id}/rollback/{sha}", workers.rollback, "write"),
    Page("POST", "/ui/workers/{id}/webhook", workers.new_webhook, "write"),
    Page("GET", "/ui/workers/{id}/run", runs.run_form),
    Page("POST", "/ui/workers/{id}/run", runs.start, "write"),
    # runs and approvals
    Page("GET", "/ui/runs", runs.list_runs),
    Page("GET", "/ui/runs/{id}", runs.run),
    Page("POST", "/ui/runs/{id}/cancel", runs.cancel, "write"),
    Page("POST", "/ui/runs/{id}/approve", approvals.approve, "write"),
    Page("POST", "/ui/runs/{id}/reject", approvals.reject, "write"),
    Page("GET", "/ui/approvals", approvals.inbox),
    # issues
    Page("GET", "/ui/issues", issues.list_issues),
    Page("GET", "/ui/new/issue", issues.new_form, "write"),
    Page("POST", "/ui/new/issue", issues.create, "write"),
    Page("GET", "/ui/issues/{id}", issues.issue),
    Page("POST", "/ui/issues/{id}/comments", issues.comment, "write"),
    Page("POST", "/ui/issues/{id}/status", issues.set_status, "write"),
    # contexts
    Page("GET", "/ui/contexts", contexts.list_contexts),
    Page("POST", "/ui/new/context", contexts.create, "write"),
    Page("GET", "/ui/contexts/{name}", contexts.context),
    Page("POST", "/ui/contexts/{name}/upload", contexts.upload, "write"),
    Page("GET", "/ui/contexts/{name}/files/{path:.+}", contexts.context_file),
    # settings
    Page("GET", "/ui/settings", settings.settings),
    Page("POST", "/ui/settings/invite", settings.invite, "admin"),
    Page("POST", "/ui/settings/members/{user_id}/remove", settings.remove_member, "admin"),
    Page("POST", "/ui/settings/tokens", settings.new_token, "admin"),
    Page("POST", "/ui/settings/tokens/{id}/revoke", settings.revoke_token, "admin"),
    Page("POST", "/ui/settings/secrets", settings.set_secret, "admin"),
    Page("POST", "/ui/settings/secrets/{name}/delete", settings.delete_secret, "admin"),
]


def setup(app: web.Application) -> None:
    environment(app)
    static = resources.files("floom_git.dashboard") / "static"
    app.router.add_static(STATIC, str(static), name="dashboard-static")
    for page in PAGES:
        app.router.add_route(page.method, page.path, wrap(page))
    app[PAGES_KEY] = [(p.method, p.path) for p in PAGES]

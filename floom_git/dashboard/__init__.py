"""The dashboard: server-rendered pages at / (Jinja2 through aiohttp-jinja2, a vendored htmx,
live run logs over the API's SSE streams) that call the REST handlers in-process, so a page and
the API follow one set of rules. `routes.setup(app)` is the composition root's one hook."""

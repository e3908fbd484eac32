"""Context packs: the list, a pack's files, one file shown as text (highlighted, never rendered
as HTML), creating a pack and uploading files into it (multipart, one commit)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from floom_git.dashboard import forms
from floom_git.dashboard.access import call
from floom_git.dashboard.code import highlighted
from floom_git.dashboard.render import redirect, render
from floom_git.errors import InvalidInput
from floom_git.http.handlers import contexts as api
from floom_git.schemas.api import ContextCreate

MAX_SHOWN = 1024 * 1024  # larger files are offered as a download only


async def list_contexts(request: web.Request) -> web.Response:
    items = await call(request, api.list_contexts)
    return render(request, "contexts.html", items=items)


async def create(request: web.Request) -> web.StreamResponse:
    form = await forms.fields(request)
    name = forms.text(form, "name", 100).strip()
    if not name:
        raise InvalidInput("name: give the pack a name")
    description = forms.text(form, "description", 500).strip() or None
    await call(request, api.create_context, ContextCreate(description=description),
               params={"name": name})
    raise redirect(f"/ui/contexts/{quote(name, safe='')}", f"Created context pack {name}.")


async def context(request: web.Request) -> web.Response:
    data = await call(request, api.get_context)
    return render(request, "context.html", c=data)


async def upload(request: web.Request) -> web.StreamResponse:
    """The API's multipart upload handler reads this post as it is (fields file, path_prefix)."""
    done = await call(request, api.upload, raw=True)
    name = request.match_info["name"]
    count = len(done["uploaded"])
    message = f"Uploaded {count} file{'s' if count != 1 else ''}" + \
        ("." if done["changed"] else " (no change).")
    raise redirect(f"/ui/contexts/{quote(name, safe='')}", message)


async def context_file(request: web.Request) -> web.Response:
    answer = await call(request, api.read_file)
    path = request.match_info["path"]
    data = answer.body if isinstance(answer, web.Response) else b""
    text = None
    if isinstance(data, bytes) and len(data) <= MAX_SHOWN:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return render(request, "context_file.html", name=request.match_info["name"], path=path,
                  size=len(data) if isinstance(data, bytes) else 0,
                  code=highlighted(path, text) if text is not None else None)

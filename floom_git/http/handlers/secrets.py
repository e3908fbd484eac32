"""Secret routes of the active workspace: list names and status (values never leave the server),
set, test and delete (admin), and the platform configuration overview."""

from __future__ import annotations

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, workspace
from floom_git.http.keys import SECRETS
from floom_git.schemas.api import Deleted
from floom_git.schemas.identity import SecretIn
from floom_git.services import workspace_secrets
from floom_git.services.secrets import MAX_VALUE, check_name

BODY_LIMIT = MAX_VALUE * 2 + 1024  # JSON escaping may double a value


async def list_secrets(request: web.Request) -> web.Response:
    return wire.json(await workspace_secrets.overview(workspace(request), request.app[SECRETS]))


async def set_secret(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    body = await wire.decode(request, SecretIn, BODY_LIMIT)
    return wire.json(await workspace_secrets.set_secret(workspace(request), request.app[SECRETS],
                                                        name, body.value, actor(request).user_id))


async def test_secret(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    return wire.json(await workspace_secrets.test_secret(workspace(request), request.app[SECRETS],
                                                         name))


async def delete_secret(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    await workspace_secrets.delete_secret(workspace(request), request.app[SECRETS], name)
    return wire.json(Deleted(deleted=True, id=name, sha=None))


async def platform_config(request: web.Request) -> web.Response:
    return wire.json(await workspace_secrets.platform_config(workspace(request),
                                                             request.app[SECRETS]))

"""Secret routes of the active workspace: list names and status (values never leave the server),
set, test and delete (admin), and the platform configuration overview."""

from __future__ import annotations

import asyncio

from aiohttp import web

from floom_git.http import wire
from floom_git.http.handlers.common import actor, workspace
from floom_git.http.keys import SECRETS
from floom_git.schemas.api import Deleted
from floom_git.schemas.identity import PlatformConfig, SecretIn, SecretOut, SecretTest
from floom_git.services import tenancy
from floom_git.services.secrets import MAX_VALUE, check_name

BODY_LIMIT = MAX_VALUE * 2 + 1024  # JSON escaping may double a value


def _status(request: web.Request, name: str) -> SecretOut:
    for item in tenancy.secret_overview(workspace(request), request.app[SECRETS]):
        if item.name == name:
            return item
    return SecretOut(name=name, status="missing", used_by=[])


async def list_secrets(request: web.Request) -> web.Response:
    return wire.json(tenancy.secret_overview(workspace(request), request.app[SECRETS]))


async def set_secret(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    body = await wire.decode(request, SecretIn, BODY_LIMIT)
    await asyncio.to_thread(request.app[SECRETS].set, workspace(request).uid, name, body.value,
                            actor(request).user_id)
    return wire.json(_status(request, name))


async def test_secret(request: web.Request) -> web.Response:
    """No provider is wired in to call out to, so the test checks the value is stored and readable."""
    name = check_name(request.match_info["name"])
    values = await asyncio.to_thread(request.app[SECRETS].values, workspace(request).uid, [name])
    ok = name in values
    reason = ("stored and decrypts; no provider check is configured for this name" if ok
              else "not set")
    return wire.json(SecretTest(name=name, status="set" if ok else "missing", ok=ok, reason=reason))


async def delete_secret(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    await asyncio.to_thread(request.app[SECRETS].delete, workspace(request).uid, name)
    return wire.json(Deleted(deleted=True, id=name, sha=None))


async def platform_config(request: web.Request) -> web.Response:
    items = tenancy.secret_overview(workspace(request), request.app[SECRETS])
    required = [s for s in items if s.used_by]
    missing = [s.name for s in required if s.status == "missing"]
    return wire.json(PlatformConfig(
        providers=[], runner="local", all_required_set=not missing, missing=missing,
        set_count=sum(1 for s in items if s.status == "set"), required_count=len(required),
        secrets=items))


"""The secret routes' rules: the overview of a workspace's secrets (names, status and the workers
using them; values never leave the server), setting, testing and deleting one, and the platform
configuration summary. The secret store's files are read and written off the event loop."""

from __future__ import annotations

import asyncio

from floom_git.schemas.identity import PlatformConfig, SecretOut, SecretTest
from floom_git.services.secrets import PLATFORM, SecretStore
from floom_git.services.tenancy import iso
from floom_git.services.workspaces import Workspace


def secret_overview(ws: Workspace, secrets: SecretStore) -> list[SecretOut]:
    """Every secret that is set or declared by a worker: status and the workers using it."""
    used_by: dict[str, list[str]] = {}
    for entry in ws.workers.all():
        if entry.manifest is not None:
            for name in entry.manifest.exec.secrets:
                used_by.setdefault(name, []).append(entry.id)
    stored = secrets.names(ws.uid)
    out = []
    for name in sorted(set(used_by) | set(stored)):
        if name in PLATFORM:
            continue
        meta = stored.get(name)
        out.append(SecretOut(name=name, status="set" if meta is not None else "missing",
                             used_by=sorted(used_by.get(name, [])),
                             updated_at=iso(meta.get("updated_at")) if meta else None,
                             updated_by=meta.get("updated_by") if meta else None))
    return out


def _status(ws: Workspace, secrets: SecretStore, name: str) -> SecretOut:
    for item in secret_overview(ws, secrets):
        if item.name == name:
            return item
    return SecretOut(name=name, status="missing", used_by=[])


async def overview(ws: Workspace, secrets: SecretStore) -> list[SecretOut]:
    return await asyncio.to_thread(secret_overview, ws, secrets)


async def set_secret(ws: Workspace, secrets: SecretStore, name: str, value: str,
                     user_id: str) -> SecretOut:
    """Store `value` (encrypted) and answer the secret's status."""
    def run() -> SecretOut:
        secrets.set(ws.uid, name, value, user_id)
        return _status(ws, secrets, name)
    return await asyncio.to_thread(run)


async def test_secret(ws: Workspace, secrets: SecretStore, name: str) -> SecretTest:
    """No provider is wired in to call out to, so the test checks the value is stored and
    readable."""
    ok = name in await asyncio.to_thread(secrets.values, ws.uid, [name])
    reason = ("stored and decrypts; no provider check is configured for this name" if ok
              else "not set")
    return SecretTest(name=name, status="set" if ok else "missing", ok=ok, reason=reason)


async def delete_secret(ws: Workspace, secrets: SecretStore, name: str) -> None:
    await asyncio.to_thread(secrets.delete, ws.uid, name)


async def platform_config(ws: Workspace, secrets: SecretStore) -> PlatformConfig:
    items = await overview(ws, secrets)
    required = [s for s in items if s.used_by]
    missing = [s.name for s in required if s.status == "missing"]
    return PlatformConfig(
        providers=[], runner="local", all_required_set=not missing, missing=missing,
        set_count=sum(1 for s in items if s.status == "set"), required_count=len(required),
        secrets=items)

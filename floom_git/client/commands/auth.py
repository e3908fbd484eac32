"""`login` (the device flow, or a token on stdin), `logout` and `whoami`."""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from typing import Any

from floom_git.client.api import Api
from floom_git.client.commands import Ctx, command, seg
from floom_git.client.config import Target
from floom_git.client.errors import OK, ClientError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    login_p = command(sub, "login", login, "sign in to a server and store the token "
                      "(device flow: approve the printed code in a signed-in browser)")
    login_p.add_argument("--with-token", action="store_true",
                         help="read an existing API token from stdin instead of the device flow")
    login_p.add_argument("--name", default=None, help="name of the token (default: this host)")
    command(sub, "logout", logout, "revoke the stored token and forget it")
    command(sub, "whoami", whoami, "who the server sees you as, and the workspace you act in")


def _anonymous(target: Target) -> Target:
    return Target(server=target.server, token=None, workspace=None, token_source="none")


def _with_token(target: Target, token: str) -> Target:
    return Target(server=target.server, token=token, workspace=target.workspace,
                  token_source="the token being stored")


async def _device_flow(ctx: Ctx, api: Api, name: str) -> str:
    start = await api.post("/cli-auth/devices", {"client_name": name})
    url, code = start["verification_url"], start["user_code"]
    interval = max(1, int(start.get("polling_interval_seconds") or 2))
    expires = int(start.get("expires_in_seconds") or 600)
    ctx.out.note("To sign in, approve this code as a signed-in user of the server:")
    ctx.out.note(f"  URL:   {url}")
    ctx.out.note(f"  Code:  {code}")
    ctx.out.note(
        f"Waiting for approval (the code expires in {expires // 60} min; Ctrl-C to give up)..."
    )
    deadline = time.monotonic() + expires
    with ctx.out.err.status("waiting for approval", spinner="dots"):
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            try:
                got = await api.post("/auth/cli-exchange", {"device_code": start["device_code"]})
            except ClientError as exc:
                if exc.reason == "authorization_pending":
                    continue
                if exc.status == 429:
                    await asyncio.sleep(interval)
                    continue
                if exc.status == 403:
                    raise ClientError("the sign-in request was denied") from None
                raise
            return str(got["token"])
    raise ClientError("the code expired before it was approved; run `floom-git login` again")


async def login(ctx: Ctx, args: argparse.Namespace) -> int:
    target = ctx.target
    if args.with_token:
        token = ctx.stdin.readline().strip()
        if not token:
            raise ClientError("--with-token: no token on stdin")
    else:
        async with Api(_anonymous(target)) as anon:
            token = await _device_flow(ctx, anon,
                                       args.name or f"floom-git CLI on {socket.gethostname()}")
    async with Api(_with_token(target, token)) as api:
        me = await api.get("/auth/me")
    user = (me.get("user") or {}).get("username") or me.get("identity")
    ctx.store.update_server(target.server, default=True, token=token, token_id=me.get("token_id"),
                            user=user)
    ctx.out.note(f"Logged in to {target.server} as {user}; token stored in {ctx.store.path}")
    if "FLOOM_TOKEN" in ctx.environ:
        ctx.out.note("note: FLOOM_TOKEN is set and takes precedence over the stored token",
                     style="yellow")
    if args.json:
        ctx.out.json({"server": target.server, "user": user, "token_id": me.get("token_id"),
                      "config": str(ctx.store.path)})
    return OK


async def logout(ctx: Ctx, args: argparse.Namespace) -> int:
    server = ctx.target.server
    entry = ctx.store.server_entry(server)
    token, token_id = entry.get("token"), entry.get("token_id")
    if not token:
        ctx.out.note(f"not logged in to {server}; nothing to forget")
        return OK
    revoked = False
    if token_id:
        try:
            async with Api(_with_token(ctx.target, token)) as api:
                await api.delete(f"/auth/tokens/{seg(token_id)}")
            revoked = True
        except ClientError as exc:
            ctx.out.note(f"warning: could not revoke the token on the server: {exc.message}",
                         style="yellow")
    ctx.store.update_server(server, token=None, token_id=None, user=None)
    ctx.out.note(f"Logged out of {server}" + (" (token revoked)" if revoked else ""))
    if args.json:
        ctx.out.json({"server": server, "revoked": revoked})
    return OK


async def whoami(ctx: Ctx, args: argparse.Namespace) -> int:
    me: dict[str, Any] = await ctx.api.get("/auth/me")
    if args.json:
        ctx.out.json({"server": ctx.target.server, **me})
        return OK
    user = me.get("user") or {}
    workspace = me.get("workspace") or {}
    ctx.out.fields([
        ("server", ctx.target.server),
        ("user", user.get("username") or me.get("identity")),
        ("email", user.get("email")),
        ("signed in with", f"{me.get('auth_method')} (from {ctx.target.token_source})"),
        ("workspace", f"{workspace.get('id')} ({workspace.get('name')})" if workspace else
         "none you can use"),
        ("role", me.get("role")),
    ])
    return OK

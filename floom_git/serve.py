"""`floom-git serve`: bind the port first (a taken one is one line and exit 1, before the data
directory exists), build the app, print the start-up banner, run until stopped."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import shlex
import socket
import sys
from typing import IO

from aiohttp import web

from floom_git import __version__, logs
from floom_git.config import Settings
from floom_git.services.auth import SECRET_FILE

log = logging.getLogger("floom_git.serve")
# How long the event loop may wait for the GIL while a thread holds it (Python's default: 5 ms).
# Threads do the server's bulk work (commits, a cold start's run records, tree listings), and
# the loop asks for the GIL back after every system call: at 5 ms a cold start's record reading
# held the opening of the listening socket up for 0.4 s. Write throughput is the same at both.
SWITCH_INTERVAL = 0.0005


# What the shared secret may do, by its role (README "Security": the permission matrix).
ROLE_WORDS = {
    "member": "member in every workspace: read, write, git push, run and approve; it cannot "
              "manage members, tokens, secrets or connections, export, or delete a workspace "
              "(WORKEROS_SHARED_SECRET_ROLE=admin allows all but deleting)",
    "admin": "admin in every workspace: also members, tokens, secrets, connections and export; "
             "it cannot delete a workspace or make owners",
}


class PortTaken(Exception):
    """The address cannot be bound; the message is the one line the person reads."""


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of `host` (as aiohttp would open them)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortTaken(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except OSError as exc:
        for sock in socks:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken(f"port {port} on {host} is already in use (another floom-git?); "
                            "choose another with --port or FLOOM_PORT") from None
        raise PortTaken(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return socks


def banner(settings: Settings, *, secret_existed: bool) -> list[str]:
    """The lines printed at start: where the server is, which credential to use and how to
    clone without putting the secret in a URL (git asks the credential helper instead)."""
    host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::", "") else settings.host
    base = f"http://{host}:{settings.port}"
    secret_file = settings.system_dir / SECRET_FILE
    if settings.secret:
        source = "FLOOM_SECRET (from the environment)"
        value = "$FLOOM_SECRET"
    else:
        verb = "read from" if secret_existed else "generated into"
        source = f"{verb} {secret_file}"
        value = f"$(cat {shlex.quote(str(secret_file))})"
    role = ROLE_WORDS.get(settings.shared_secret_role, ROLE_WORDS["member"])
    helper = f'!f() {{ echo username=floom; echo "password={value}"; }}; f'
    clone = (f"git clone -c {shlex.quote('credential.helper=' + helper)} "
             f"{base}/git/default.git")
    lines = [
        f"floom-git {__version__} serving {settings.data_dir}",
        f"  Dashboard: {base}/   (API reference: {base}/docs)",
        f"  API:       {base}/api",
        f"  Secret:    {source}",
        f"             role: {role}",
        f'  Try:       curl -H "x-floom-secret: {value}" {base}/api/workers',
        f"  Clone:     {clone}",
        f"  Sign in:   floom-git user add NAME --workspace default --role admin --data-dir "
        f"{shlex.quote(str(settings.data_dir))}   (prints a password for the dashboard)",
    ]
    if settings.secret:
        lines.append("             (export FLOOM_SECRET in the shell that runs curl and git)")
    return lines


def watch_children_by_pidfd() -> bool:
    """Have asyncio learn of a child process's exit from a pidfd on the event loop. Python 3.11
    otherwise starts a thread per child to wait for it, and starting one waits until the thread
    runs: a millisecond or more per git process on a busy machine, twice per push. (3.12 uses
    pidfds by itself.) False where the kernel or a sandbox has no pidfd_open."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # Linux before 5.3, or a seccomp filter that forbids it
        return False
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    return True


def serve(settings: Settings, *, stderr: IO[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM. Exit 1 when the port is taken, 2 for a setting
    the server refuses to start with."""
    out = stderr or sys.stderr
    try:
        socks = bind(settings.host, settings.port)
    except PortTaken as exc:
        print(f"error: {exc}", file=out)
        return 1
    # Loading the server and opening the workspaces takes seconds on a busy machine: say so.
    print(f"floom-git {__version__}: starting on port {settings.port} with data in "
          f"{settings.data_dir} ...", file=out, flush=True)
    from floom_git.http.app import create_app

    logs.setup(settings.log_format, settings.log_level)
    existed = (settings.system_dir / SECRET_FILE).exists()
    try:
        app = create_app(settings)
    except ValueError as exc:  # a setting the server refuses to start with
        for sock in socks:
            sock.close()
        print(f"error: {exc}", file=out)
        return 2
    print("\n".join(banner(settings, secret_existed=existed)), file=out, flush=True)
    watch_children_by_pidfd()
    sys.setswitchinterval(SWITCH_INTERVAL)
    # What exists now (modules, routes, stores) lives as long as the server: never scanned
    # again by the cyclic GC (cli turned it off while it was made; on again for what follows).
    gc.freeze()
    gc.enable()
    web.run_app(app, sock=socks, print=None, access_log=None)
    log.info("floom-git stopped")
    return 0

"""Confinement of one command under bubblewrap: a `Spec` says what the command may see (read-only
and writable binds, environment, network, rlimits) and `Sandbox.argv` turns it into a command line.
Script runs use it; agent tools and remote executors are meant to reuse it as it is."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PRLIMIT = "/usr/bin/prlimit"
SETPRIV = "/usr/bin/setpriv"
SH = "/bin/sh"
ENV_FILE = "/run/floom/env"
HOSTNAME = "floom-run"
# Top-level system folders: bound read-only, or re-created as the symlinks into /usr they are on
# merged-/usr systems.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what programs need from /etc: users, name resolution, certificates, the dynamic linker's
# cache, alternatives symlinks, pip's configuration. Never all of /etc: it may hold the server's
# own configuration. (Each entry is a mount, and mounts are most of a sandbox's start-up cost.)
ETC_ENTRIES = ("alternatives", "group", "hosts", "ld.so.cache", "nsswitch.conf", "os-release",
               "passwd", "pip.conf", "protocols", "resolv.conf", "services", "ssl")
# When the server runs as root, each sandbox runs as a uid (and gid) drawn from this range: no
# account has them, and RLIMIT_NPROC then counts that one sandbox's processes only (drawn at
# random, so that two servers on one machine do not share them either).
ROOT_RUN_UID_BASE = 1_900_000_000
ROOT_RUN_UIDS = 100_000_000
UNPRIVILEGED_PATH = "/usr/local/bin:/usr/bin:/bin"
MIN_VERSION = "0.8.0"  # --disable-userns, --perms with --dir (Debian 12 ships 0.8.0)


@dataclass(frozen=True)
class Limits:
    """Per-process rlimits; `processes` counts the sandbox's processes and threads together."""

    cpu_seconds: int
    file_bytes: int
    memory_bytes: int | None = None
    open_files: int = 1024
    processes: int | None = None


@dataclass(frozen=True)
class Bind:
    source: Path  # on the host
    dest: str  # inside the sandbox
    writable: bool = False


@dataclass(frozen=True)
class Spec:
    """What one confined command may see and do. `binds` are applied in order after the system
    folders, so a bind inside an earlier one (a read-only file in the writable scratch dir) wins."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    limits: Limits
    binds: list[Bind] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)  # dest inside -> target
    network: bool = False  # share the host's network namespace (declared egress)


def system_binds() -> list[Bind]:
    """The interpreter's installation when it lives outside /usr (a pyenv build, say): a venv's
    `bin/python` is a symlink to it, so without it no Python starts inside."""
    prefix = Path(sys.base_prefix).resolve()
    if any(prefix == Path(d) or Path(d) in prefix.parents for d in SYSTEM_DIRS):
        return []
    return [Bind(prefix, str(prefix))]


def env_script(env: dict[str, str]) -> bytes:
    """The environment as shell assignments, read by the sandbox's first shell (never argv: other
    users see argv in /proc; never bwrap's own environment: LD_PRELOAD would load into it)."""
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items())).encode()


def _rlimit(kind: int, wanted: int) -> int:
    """`wanted`, lowered to the hard limit this process already has (raising it needs root)."""
    hard = resource.getrlimit(kind)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def prlimit_argv(limits: Limits) -> list[str]:
    argv = [PRLIMIT, f"--cpu={_rlimit(resource.RLIMIT_CPU, limits.cpu_seconds)}",
            f"--fsize={_rlimit(resource.RLIMIT_FSIZE, limits.file_bytes)}",
            f"--nofile={_rlimit(resource.RLIMIT_NOFILE, limits.open_files)}", "--core=0"]
    if limits.memory_bytes:
        argv.append(f"--as={_rlimit(resource.RLIMIT_AS, limits.memory_bytes)}")
    if limits.processes:
        argv.append(f"--nproc={_rlimit(resource.RLIMIT_NPROC, limits.processes)}")
    return [*argv, "--"]


def _too_old(version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".")[:3] if p.isdigit())

    return parts(version) < parts(MIN_VERSION)


def _entries(folder: Path, names: tuple[str, ...]) -> list[Bind]:
    return [Bind(folder / name, f"{folder}/{name}") for name in names
            if os.path.lexists(folder / name)]


class Sandbox:
    """Builds bwrap command lines. As root, bwrap sets up the mounts as root (it can reach a
    pyenv under /root) and the command then drops to an unprivileged uid of its own with no
    capabilities; otherwise bwrap runs unprivileged inside a new user namespace."""

    def __init__(self, bwrap: str = "bwrap", *, privileged: bool | None = None) -> None:
        self.bwrap = bwrap
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self._uids: set[int] = set()

    @contextlib.contextmanager
    def run_uid(self) -> Iterator[int | None]:
        """A uid no other live sandbox uses (root only; None otherwise), held for the block."""
        if not self.privileged:
            yield None
            return
        uid = ROOT_RUN_UID_BASE + secrets.randbelow(ROOT_RUN_UIDS)
        while uid in self._uids:
            uid = ROOT_RUN_UID_BASE + secrets.randbelow(ROOT_RUN_UIDS)
        self._uids.add(uid)
        try:
            yield uid
        finally:
            self._uids.discard(uid)

    def argv(self, spec: Spec, env_fd: int, uid: int | None = None) -> list[str]:
        """The bwrap command line for `spec`; `env_fd` is an open file holding `env_script(...)`
        (passed to the child), `uid` the run uid when privileged."""
        out = [self.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
               "--hostname", HOSTNAME, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if self.privileged:
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):  # for setpriv only
                out += ["--cap-add", cap]
        else:
            out += ["--unshare-user", "--disable-userns"]
        if not spec.network:
            out.append("--unshare-net")
        made: set[str] = {"/"}

        def parents(dest: str) -> None:
            """Create the folders above a mount point 0755: bwrap would make them 0700 (or copy
            the host's mode: /root is 0700), and the run's uid could not pass through them."""
            for parent in reversed(Path(dest).parents):
                if str(parent) not in made:
                    out.extend(["--perms", "0755", "--dir", str(parent)])
                    made.add(str(parent))

        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                out += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                out += ["--ro-bind", d, d]
                made.add(d)
        for bind in _entries(Path("/etc"), ETC_ENTRIES):
            parents(bind.dest)
            out += ["--ro-bind-try", str(bind.source), bind.dest]
        out += ["--proc", "/proc", "--dev", "/dev"]
        made.update({"/proc", "/dev"})
        for bind in [*system_binds(), *spec.binds]:
            parents(bind.dest)
            out += ["--bind" if bind.writable else "--ro-bind", str(bind.source), bind.dest]
        for dest, target in spec.symlinks.items():
            parents(dest)
            out += ["--symlink", target, dest]
        parents(ENV_FILE)
        # The root and /dev are tmpfs (in a user namespace, owned by the run): read-only, so
        # the binds stay the only writable places.
        out += ["--perms", "0444", "--ro-bind-data", str(env_fd), ENV_FILE,
                "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", spec.cwd,
                "--clearenv", "--setenv", "PATH", UNPRIVILEGED_PATH, "--"]
        if self.privileged:
            if uid is None:
                raise ValueError("a privileged sandbox needs a run uid")
            out += [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        out += prlimit_argv(spec.limits)
        # The environment reaches only the command itself, after every privileged step.
        return [*out, SH, "-c", f'set -a; . {ENV_FILE}; set +a; exec "$@"', "floom", *spec.argv]

    def probe(self, timeout: float = 30.0) -> str | None:
        """None when a sandbox can be created here, else why not (for logs and /health)."""
        for tool in (PRLIMIT, SETPRIV) if self.privileged else (PRLIMIT,):
            if not os.access(tool, os.X_OK):
                return f"{tool} is missing (Debian package util-linux)"
        spec = Spec(argv=["/bin/true"], cwd="/", env={},
                    limits=Limits(cpu_seconds=10, file_bytes=1 << 20))
        fd = os.memfd_create("floom-probe-env")
        try:
            version = subprocess.run([self.bwrap, "--version"], capture_output=True, text=True,
                                     timeout=timeout, check=False).stdout.split()
            if len(version) == 2 and _too_old(version[1]):
                return f"bubblewrap {version[1]} is too old; {MIN_VERSION} or newer is needed"
            with self.run_uid() as uid:
                proc = subprocess.run(self.argv(spec, fd, uid), pass_fds=(fd,), capture_output=True,
                                      timeout=timeout, env={"PATH": UNPRIVILEGED_PATH}, check=False)
        except FileNotFoundError:
            return (f"bubblewrap is not installed ({self.bwrap} not found; "
                    "Debian package bubblewrap)")
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{self.bwrap} could not be started: {exc}"
        finally:
            os.close(fd)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            why = err[-1] if err else f"exit {proc.returncode}"
            return f"{self.bwrap} cannot create a sandbox here: {why}"
        return None


def memfd_with(data: bytes) -> int:
    """An anonymous file holding `data`, positioned at its start (for --ro-bind-data)."""
    fd = os.memfd_create("floom-env")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd

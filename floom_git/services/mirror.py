"""Remote mirror (WORKEROS_GIT_REMOTE): a new workspace is cloned from its remote instead of
seeded, and after every commit `main` and `floom/runs` are pushed there in the background with
retry and exponential backoff. Mirror.states() is what /health/details and others read."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from floom_git.config import Settings
from floom_git.redaction import mask_url, mask_urls_in
from floom_git.schemas.health import MirrorStatus
from floom_git.storage.git_process import git_env
from floom_git.storage.repo import MAIN, RUNS

if TYPE_CHECKING:
    from floom_git.services.workspaces import Workspace, WorkspaceManager

PLACEHOLDER = "{workspace}"
REFS = (MAIN, RUNS)
DEFAULT_WORKSPACE = "default"
GIT_TIMEOUT = 300.0
DEBOUNCE = 0.05  # lets a burst of commits go out in one push
# Same repository settings WorkspaceRepo.create gives a seeded workspace.
REPO_CONFIG = (
    "receive.denyDeletes=true",
    "receive.denyNonFastForwards=true",
    "receive.fsckObjects=true",
    "core.commitGraph=true",
    "gc.writeCommitGraph=true",
    "uploadpack.allowFilter=true",
)

log = logging.getLogger("floom_git.mirror")


def remote_for(setting: str | None, ws_id: str) -> str | None:
    """The remote URL or path of workspace `ws_id`. `{workspace}` in the setting is replaced by
    the id (one remote per workspace); a setting without it is the remote of `default` only,
    since several workspaces pushing one remote would overwrite each other's `main`."""
    if not setting:
        return None
    if PLACEHOLDER in setting:
        return setting.replace(PLACEHOLDER, ws_id)
    return setting if ws_id == DEFAULT_WORKSPACE else None


def redact(url: str) -> str:
    """`url` with its credentials masked (https://user:secret@host -> https://user:***@host,
    https://TOKEN@host -> https://***@host)."""
    return mask_url(url)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _short_error(stderr: bytes, url: str) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    text = " ".join(lines[-3:]) or "git failed without a message"
    return mask_urls_in(text.replace(url, redact(url)))[:500]


def clone_into(settings: Settings, ws_id: str, target: Path) -> bool:
    """Clone workspace `ws_id`'s remote into `target` (a workspace being created).

    Returns False when there is nothing to clone: no remote configured, the remote is empty (the
    mirror pushes the seeded workspace there) or unreachable (logged; the mirror keeps retrying
    and /health/details shows the error). Raises RuntimeError when a reachable remote with a
    `main` cannot be cloned, rather than seeding a history that would fork from it.
    """
    url = remote_for(settings.git_remote, ws_id)
    if url is None:
        return False
    git = settings.git_binary
    try:
        listing = subprocess.run(
            [git, "ls-remote", url, *REFS],
            capture_output=True,
            env=git_env(git),
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("mirror remote %s did not answer; seeding workspace %s", redact(url), ws_id)
        return False
    if listing.returncode != 0:
        log.warning(
            "mirror remote %s unreachable (%s); seeding workspace %s from the template",
            redact(url),
            _short_error(listing.stderr, url),
            ws_id,
        )
        return False
    heads = {
        line.split("\t", 1)[1] for line in listing.stdout.decode().splitlines() if "\t" in line
    }
    if MAIN not in heads:
        log.info("mirror remote %s is empty; seeding workspace %s", redact(url), ws_id)
        return False
    config = [arg for item in REPO_CONFIG for arg in ("-c", item)]
    steps = [[git, "clone", "--quiet", "--no-tags", "--branch", "main", *config, url, str(target)]]
    if RUNS in heads:
        steps.append(
            [git, "-C", str(target), "fetch", "--quiet", "--no-tags", url, f"+{RUNS}:{RUNS}"]
        )
    # The workspace keeps no remote: the URL may hold credentials, and people clone this repo.
    steps.append([git, "-C", str(target), "remote", "remove", "origin"])
    for cmd in steps:
        proc = subprocess.run(
            cmd, capture_output=True, env=git_env(git), timeout=GIT_TIMEOUT, check=False
        )
        if proc.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(
                f"cloning workspace {ws_id} from {redact(url)} failed: "
                f"{_short_error(proc.stderr, url)}"
            )
    log.info("cloned workspace %s from mirror remote %s", ws_id, redact(url))
    return True


class _WorkspaceMirror:
    """Pushes one workspace's refs; one background task, woken by commits."""

    def __init__(self, ws_id: str, path: Path, url: str, settings: Settings) -> None:
        self.path = path
        self.url = url
        self.settings = settings
        self.status = MirrorStatus(workspace=ws_id, enabled=True, remote=redact(url), pending=True)
        self.wake = asyncio.Event()
        self.wake.set()  # push once at start: catches up on commits made before a restart
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            await asyncio.sleep(DEBOUNCE)
            self.wake.clear()
            while not await self.push_once():
                st = self.status
                delay = min(
                    self.settings.mirror_retry_seconds * 2 ** (st.failures - 1),
                    self.settings.mirror_retry_max_seconds,
                )
                st.next_retry_at = (
                    (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))
                    .isoformat(timespec="seconds")
                    .replace("+00:00", "Z")
                )
                await asyncio.sleep(delay)
                self.wake.clear()  # this retry covers the commits that arrived meanwhile
            self.status.next_retry_at = None

    async def push_once(self) -> bool:
        """Push main and floom/runs as they are now; True when the remote holds them."""
        st = self.status
        try:
            code, out, err = await _git(
                self.settings.git_binary,
                "-C",
                str(self.path),
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                *REFS,
            )
            if code != 0:
                raise OSError(_short_error(err, self.url))
            local = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
            if local == st.pushed:
                st.pending = False
                return True
            st.pending, st.pushing = True, True
            refspecs = [f"{sha}:{ref}" for ref, sha in sorted(local.items())]
            code, _, err = await _git(
                self.settings.git_binary,
                "-C",
                str(self.path),
                "push",
                "--atomic",
                "--quiet",
                self.url,
                *refspecs,
            )
            if code != 0:
                raise OSError(_short_error(err, self.url))
        except (TimeoutError, OSError) as exc:
            st.failures += 1
            st.last_error = str(exc) or type(exc).__name__
            st.last_error_at = _now()
            log.warning(
                "mirror push of workspace %s to %s failed (attempt %d): %s",
                st.workspace,
                st.remote,
                st.failures,
                st.last_error,
            )
            return False
        finally:
            st.pushing = False
        if st.failures:
            log.info("mirror push of workspace %s to %s works again", st.workspace, st.remote)
        st.pushed = local
        st.failures, st.last_error, st.last_ok_at = 0, None, _now()
        st.pending = self.wake.is_set()
        return True


async def _git(git: str, *args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        git,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_env(git),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT)
    except BaseException:  # timeout or cancellation: never leave a git process behind
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return proc.returncode or 0, out, err


class Mirror:
    """The mirrors of every open workspace. start() on the event loop, stop() at shutdown."""

    def __init__(self, manager: WorkspaceManager, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings
        self._mirrors: dict[str, _WorkspaceMirror] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.git_remote)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.enabled:
            return
        for ws in self.manager.all():
            self._attach(ws)
        self.manager.on_open.append(self._opened)
        self.manager.on_close.append(self._closed)

    async def stop(self) -> None:
        for callbacks, fn in (
            (self.manager.on_open, self._opened),
            (self.manager.on_close, self._closed),
        ):
            if fn in callbacks:
                callbacks.remove(fn)
        tasks = [m.task for m in self._mirrors.values() if m.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._mirrors.clear()

    def _opened(self, ws: Workspace) -> None:  # may run in a worker thread (create_sync)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._attach, ws)

    def _closed(self, ws: Workspace) -> None:
        mirror = self._mirrors.pop(ws.id, None)
        if mirror is not None and mirror.task is not None:
            mirror.task.cancel()

    def _attach(self, ws: Workspace) -> None:
        url = remote_for(self.settings.git_remote, ws.id)
        if url is None or ws.id in self._mirrors:
            return
        mirror = _WorkspaceMirror(ws.id, ws.path, url, self.settings)
        self._mirrors[ws.id] = mirror
        ws.moves.subscribers.append(lambda _move: mirror.wake.set())
        mirror.task = asyncio.get_running_loop().create_task(mirror.run())

    def states(self) -> dict[str, MirrorStatus]:
        """Mirror state of every open workspace (enabled=False where no remote applies)."""
        out = {}
        for ws_id in self.manager.ids():
            mirror = self._mirrors.get(ws_id)
            out[ws_id] = (
                mirror.status
                if mirror is not None
                else MirrorStatus(workspace=ws_id, enabled=False)
            )
        return out

"""Workspaces: one git repository each under data/workspaces/<id>, with its writer, worker
registry and event bus. Creating one seeds it from workspace_template/ in a single commit, or
clones it from the mirror remote when one is configured and holds a `main`.

Every workspace also has an internal id (`uid`, kept in `.git/floom-workspace-id`), random and
never reused: all server-side state of a workspace (memberships, tokens, secrets, share links,
webhook secrets, alerts, schedules, the run spool) is keyed by it, so a workspace created again
under a deleted one's name starts with none of the old tenant's state.

A workspace that cannot be opened or recovered is fenced: reported and unavailable, while the
others serve."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from floom_git import paths
from floom_git.codec import dump_yaml, load_yaml, set_top_level
from floom_git.config import Settings
from floom_git.errors import Conflict, FloomError, InvalidInput, NotFound, Unavailable
from floom_git.services import freeze, mirror
from floom_git.services.actor import SYSTEM, Actor
from floom_git.services.conversations import ConversationStore
from floom_git.services.events import EventBus
from floom_git.services.moves import Moved, Moves
from floom_git.services.registry import WorkerRegistry
from floom_git.services.run_records import Hooks, RunStore
from floom_git.storage import block_groups, history, private, repo_info
from floom_git.storage.atomic import atomic_write
from floom_git.storage.repo import MAIN, CommitResult, WorkspaceRepo
from floom_git.storage.writer import Writer

log = logging.getLogger("floom_git.workspaces")
COMMIT_GRAPH_EVERY = 200
UID_FILE = "floom-workspace-id"  # in the repository's .git/, never in a commit
# system/<this>: names of deleted workspaces. Their mirror remotes still hold the old tenant's
# history, so a workspace created again under such a name is seeded, never cloned from there.
DELETED_FILE = "deleted-workspaces.json"
_UPKEEP: set[asyncio.Task[object]] = set()  # running upkeep tasks (kept referenced)


@dataclass
class Workspace:
    id: str
    repo: WorkspaceRepo
    writer: Writer
    workers: WorkerRegistry
    events: EventBus
    settings: Settings
    uid: str  # internal id, never reused (see the module docstring)
    moves: Moves  # after a branch moved: reload, event, subscribers (services/moves.py)
    # Names of the secrets set for this workspace (values never leave the secret store).
    secret_names: Callable[[], Collection[str]] = lambda: ()
    # The run engine that dispatches this workspace's runs (None where no engine runs, as in
    # tests of the services alone); the store uses it once the engine has attached it.
    run_engine: InitVar[Hooks | None] = None
    runs: RunStore = field(init=False)  # its run records; made with the workspace
    conversations: ConversationStore = field(init=False)  # its chat, on floom/conversations
    logs: history.PathLogs = field(init=False)  # the log of paths on main (versions)
    frozen: freeze.FreezeCache = field(default_factory=freeze.FreezeCache)  # see services/freeze

    def __post_init__(self, run_engine: Hooks | None) -> None:
        self.runs = RunStore(self, run_engine)
        self.conversations = ConversationStore(self)
        self.logs = history.PathLogs(self.repo, self.settings.git_binary)

    @property
    def path(self) -> Path:
        return self.repo.path

    @property
    def git_dir(self) -> Path:
        """The repository's `.git/` folder."""
        return Path(repo_info.git_dir(self.repo))

    async def _landed(self, commits: list[tuple[CommitResult, str, str]]) -> None:
        """The writer's commits, into the move pipeline. A sync's commit is announced by the
        sync itself (it also says what it left on disk)."""
        await self.moves.landed([
            Moved("api", r.parent, r.sha, list(r.files), email, ref, paths=list(r.paths))
            for r, ref, email in commits if not (ref == MAIN and r.from_disk)
        ])

    def _on_commit(self, result: CommitResult, ref: str) -> None:
        if self.writer.commits % COMMIT_GRAPH_EVERY == 0:
            # Packing loose objects and refreshing the commit-graph (fast path history) take
            # repository locks, so they run under the writer lock, in the background.
            task = asyncio.get_running_loop().create_task(self.writer.run_locked(self._upkeep))
            _UPKEEP.add(task)
            task.add_done_callback(_UPKEEP.discard)

    def _upkeep(self) -> None:
        history.upkeep(self.path, self.settings.git_binary)
        self.repo.reopen()  # git may have removed packs the old handle knows

    def name(self) -> str:
        data = (self.path / paths.WORKSPACE_YML)
        try:
            meta = load_yaml(data.read_bytes(), where=paths.WORKSPACE_YML)
            name = meta.get("name") if isinstance(meta, dict) else None
            if isinstance(name, str):
                return name
        except (OSError, InvalidInput):
            pass
        return self.id


def new_uid() -> str:
    """A fresh internal id. The dot keeps it apart from every workspace name (ids written by
    servers before internal ids existed are the workspace's name)."""
    return "ws." + secrets.token_hex(12)


def read_uid(repo_dir: Path) -> str | None:
    """The internal id of the workspace repository at `repo_dir`; its name for a workspace made
    before internal ids existed; None when `repo_dir` holds no workspace."""
    git_dir = repo_dir / ".git"
    if not git_dir.is_dir():
        return None
    try:
        value = (git_dir / UID_FILE).read_text().strip()
    except FileNotFoundError:
        return repo_dir.name
    return value or repo_dir.name


def _write_uid(repo_dir: Path, uid: str) -> None:
    atomic_write(repo_dir / ".git" / UID_FILE, (uid + "\n").encode(), mode=0o644, durable=True)


def template_files(template_dir: Path, ws_id: str,
                   meta_overrides: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The files of workspace_template/, with workspace.yml naming the new workspace (plus any
    `meta_overrides`, e.g. a display name and description)."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(template_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in {"__pycache__", ".git"})
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() or name.endswith(".pyc"):
                continue
            files[full.relative_to(template_dir).as_posix()] = full.read_bytes()
    meta = {"name": ws_id, "description": f"floom-git workspace {ws_id}"}
    changes = {"name": ws_id, **{k: v for k, v in (meta_overrides or {}).items() if v is not None}}
    if paths.WORKSPACE_YML in files:
        raw = files[paths.WORKSPACE_YML]
        loaded = load_yaml(raw, where=paths.WORKSPACE_YML)
        if isinstance(loaded, dict):
            try:  # edited line by line, so the template's comments (an agent: example) stay
                text = raw.decode()
                for key, value in changes.items():
                    text = set_top_level(text, key, value)
                files[paths.WORKSPACE_YML] = text.encode()
                return files
            except InvalidInput:
                meta = loaded
    files[paths.WORKSPACE_YML] = dump_yaml({**meta, **changes})
    return files


class WorkspaceManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._spaces: dict[str, Workspace] = {}
        self._uids: dict[str, Workspace] = {}
        # Workspaces that could not be opened or recovered: id -> why. Their routes answer 503.
        self.fenced: dict[str, str] = {}
        self._create_lock = asyncio.Lock()
        # Called with each workspace once it is open (from any thread), e.g. to start watching it.
        self.on_open: list[Callable[[Workspace], None]] = []
        # Called with each workspace just before it is deleted (on the event loop), e.g. to stop
        # watching it; its writer lock is held, so nothing else writes to it meanwhile.
        self.on_close: list[Callable[[Workspace], None]] = []
        # Awaited in order with a workspace being deleted, after it has left the manager and
        # before its repository goes: each removes what it keeps of the workspace (its runs,
        # share links, webhook secrets, alerts, schedules, secrets, members, tokens, caches).
        self.on_delete: list[Callable[[Workspace], Awaitable[None]]] = []
        # Then each of these is called off the event loop with the workspace's internal id: the
        # stores in system/ that forget it (blocking file and database work).
        self.on_delete_stored: list[Callable[[str], object]] = []
        # workspace id -> names of its secrets; wired to the secret store by the app.
        self.secret_names: Callable[[str], Collection[str]] = lambda ws_id: ()
        # The run engine every workspace's run store reports to; wired by the app before the
        # workspaces open (runtime/queue.py's RunEngine).
        self.run_engine: Hooks | None = None

    async def start(self, default: str = "default") -> None:
        """Open every workspace on disk (off the event loop), then create `default` when no
        workspace of that name exists (fenced when it cannot be made: the rest still serve)."""
        await asyncio.to_thread(self.open_all)
        if not self.known(default):
            try:
                await self.create(default)
                log.info("created workspace '%s' from %s", default, self.settings.template_dir)
            except Exception as exc:  # e.g. a folder `default` that is no repository
                self.fence(default, exc)

    def open_all(self) -> None:
        """Open every workspace on disk, finishing any interrupted working-tree sync."""
        root = self._root()
        for child in sorted(root.iterdir()):
            if child.name.startswith((".creating-", ".deleting-")):
                shutil.rmtree(child, ignore_errors=True)  # a create or delete that crashed midway
            elif (child / ".git").is_dir() and paths.WORKSPACE_ID_RE.match(child.name):
                try:
                    self._open(child.name)
                except Exception as exc:  # one workspace's contents never stop the server
                    self.fence(child.name, exc)

    def _root(self) -> Path:
        """The workspaces folder, made when missing; each workspace made in it gets a block
        group of its own where the file system can tell (storage/block_groups.py)."""
        root = self.settings.workspaces_dir
        root.mkdir(parents=True, exist_ok=True)
        block_groups.mark_top(root)
        return root

    def fence(self, ws_id: str, exc: BaseException) -> None:
        """Take workspace `ws_id` out of service: its routes answer 503 naming `exc`."""
        why = exc.message if isinstance(exc, FloomError) else f"{type(exc).__name__}: {exc}"
        self._spaces.pop(ws_id, None)
        self.fenced[ws_id] = why
        log.error("workspace %s is fenced (its routes answer 503 until it is repaired and the "
                  "server restarted): %s", ws_id, why)

    def _open(self, ws_id: str) -> Workspace:
        path = self.settings.workspaces_dir / ws_id
        uid = read_uid(path) or ws_id
        if uid in self._uids:  # a copied folder: the copy must not share the other's state
            log.warning(
                "workspace %s carries the internal id of workspace %s; it gets a new one "
                "(and none of that workspace's server-side state)",
                ws_id,
                self._uids[uid].id,
            )
            uid = new_uid()
            _write_uid(path, uid)
        repo = WorkspaceRepo(path)
        repo.recover()
        workers, events = WorkerRegistry(repo), EventBus()
        ws = Workspace(ws_id, repo, Writer(repo), workers, events, self.settings, uid=uid,
                       moves=Moves(workers, events), secret_names=lambda: self.secret_names(uid),
                       run_engine=self.run_engine)
        ws.writer.listeners.append(ws._on_commit)
        ws.writer.landed = ws._landed
        ws.writer.gate = lambda ref: freeze.check_writable(ws) if ref == MAIN else None
        ws.workers.reload_all()
        self._spaces[ws_id] = ws
        self._uids[uid] = ws
        for listener in list(self.on_open):
            listener(ws)
        return ws

    def ids(self) -> list[str]:
        return sorted(self._spaces)

    def all(self) -> list[Workspace]:
        return [self._spaces[k] for k in sorted(self._spaces)]

    def get(self, ws_id: str) -> Workspace:
        """The open workspace; NotFound, or Unavailable for a fenced one."""
        ws = self._spaces.get(ws_id)
        if ws is None:
            if ws_id in self.fenced:
                raise Unavailable(
                    f"Workspace {ws_id} is unavailable: its repository could not be opened or "
                    f"recovered at start-up ({self.fenced[ws_id]}); an administrator must repair "
                    "it and restart the server"
                )
            raise NotFound("Workspace not found")
        return ws

    def exists(self, ws_id: str) -> bool:
        """An open workspace (a fenced one is `known`, not open)."""
        return ws_id in self._spaces

    def uid_of(self, ws_id: str) -> str | None:
        """The internal id of the open workspace named `ws_id`, or None."""
        ws = self._spaces.get(ws_id)
        return ws.uid if ws is not None else None

    def by_uid(self, uid: str | None) -> Workspace | None:
        """The open workspace with internal id `uid`, or None (deleted, or never existed)."""
        return self._uids.get(uid) if uid is not None else None
    def known(self, ws_id: str) -> bool:
        """The id names a workspace on this server, open or fenced."""
        return ws_id in self._spaces or ws_id in self.fenced

    def create_sync(self, ws_id: str, actor: Actor = SYSTEM,
                    meta: dict[str, Any] | None = None) -> Workspace:
        paths.check_workspace_id(ws_id)
        target = self.settings.workspaces_dir / ws_id
        if ws_id in self._spaces or target.exists():
            raise Conflict(f"Workspace {ws_id} already exists")
        tmp = self._root() / f".creating-{ws_id}-{os.getpid()}"
        files = template_files(self.settings.template_dir, ws_id, meta)
        reused = ws_id in private.read_json(self.settings.system_dir / DELETED_FILE)
        if reused and mirror.remote_for(self.settings.git_remote, ws_id):
            log.warning("workspace %s was deleted before: it starts from the template, not from "
                        "its mirror remote (which holds the deleted workspace's history)", ws_id)
        if reused or not mirror.clone_into(self.settings, ws_id, tmp):  # WORKEROS_GIT_REMOTE first
            WorkspaceRepo.create(tmp, files, f"workspace: create {ws_id}", actor.signature)
        history.write_commit_graph(tmp, self.settings.git_binary)
        _write_uid(tmp, new_uid())
        os.rename(tmp, target)  # a half-created workspace never appears under its id
        return self._open(ws_id)

    async def create(self, ws_id: str, actor: Actor = SYSTEM,
                     meta: dict[str, Any] | None = None) -> Workspace:
        async with self._create_lock:
            return await asyncio.to_thread(self.create_sync, ws_id, actor, meta)

    async def delete(self, ws_id: str) -> None:
        """Delete workspace `ws_id` and everything kept about it; NotFound if unknown.

        It leaves the manager first (no request, run or schedule finds it any more), then every
        `on_delete` purger removes its state, then the repository goes. Waits for the writer so
        no commit is cut short; the directory is first renamed out of the way, so a crash midway
        never leaves a half-deleted workspace under its id. A purger that fails is logged: what
        it kept stays keyed by an internal id that no workspace will have again.
        """
        ws = self.get(ws_id)
        del self._spaces[ws_id]
        self._uids.pop(ws.uid, None)
        await asyncio.to_thread(self._remember_deleted, ws_id)
        for purge in list(self.on_delete):
            try:
                await purge(ws)
            except Exception:
                log.exception("deleting workspace %s: %r could not remove its state", ws_id, purge)
        for forget in list(self.on_delete_stored):
            try:
                await asyncio.to_thread(forget, ws.uid)
            except Exception:
                log.exception("deleting workspace %s: %r could not remove its state", ws_id, forget)
        async with ws.writer.locked():
            for listener in list(self.on_close):
                listener(ws)
            trash = self.settings.workspaces_dir / f".deleting-{ws_id}-{os.getpid()}"
            await asyncio.to_thread(os.rename, ws.path, trash)
        await asyncio.to_thread(shutil.rmtree, trash, True)

    def _remember_deleted(self, ws_id: str) -> None:
        path = self.settings.system_dir / DELETED_FILE
        deleted = private.read_json(path)
        deleted[ws_id] = time.time()
        private.write_json(path, deleted)

    def ensure(self, ws_id: str) -> Workspace:
        return self._spaces.get(ws_id) or self.create_sync(ws_id)

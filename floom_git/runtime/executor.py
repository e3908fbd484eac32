"""Script runner: lays a worker's files (from its pinned commit) into a scratch dir, installs its
requirements.txt into a virtual environment cached by hash, runs `exec.command` confined by the
sandbox (runtime/sandbox.py) with an allow-listed environment, rlimits and a timeout, streams
stdout/stderr as redacted log lines, then reads result.json (REFERENCE.md §1.8) and keeps the safe
files of out/ as artifacts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floom_git.config import Settings
from floom_git.runtime import artifacts, process
from floom_git.runtime.redaction import Redactor
from floom_git.runtime.sandbox import Bind, Limits, Sandbox, Spec
from floom_git.services.runs import Outcome

log = logging.getLogger("floom_git.runs")
LogFn = Callable[[str, str], None]  # (level, message)
ENV_OK = ".floom-ok"
PGID_FILE = "pgid"
WORK = "/work"  # the scratch dir inside the sandbox: cwd and HOME of the run
SHIMS = "/run/floom/bin"  # `python` and `python3` inside the sandbox
TMP = ".tmp"
ENV_LOCAL = ".env.local"
# Outputs of a run: never laid out from the worker's files (they stay writable).
OUTPUT_NAMES = frozenset({"out", "result.json"})
INSTALL_FILE_MB = 1024  # a wheel pip downloads may be large


@dataclass
class Job:
    run_id: str
    worker_id: str
    command: str
    workdir: Path  # scratch dir; removed afterwards
    artifacts_dir: Path  # where collected artifacts are copied (committed with the record)
    files: dict[str, tuple[bytes, bool]]  # worker files: path -> (content, executable)
    inputs: dict[str, Any]
    timeout: float
    secrets: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, dict[str, bytes]] = field(default_factory=dict)
    memory_mb: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    network: bool = False  # `capabilities.network.egress: true` in worker.yml


def read_result(workdir: Path, returncode: int, max_bytes: int,
                stderr_tail: str = "") -> Outcome:
    """Turn the process exit and result.json into an Outcome (the error codes of §1.8)."""
    path = workdir / "result.json"
    if not path.is_file() or path.is_symlink():
        if returncode != 0:
            return Outcome("failed", error_code="execution_error", exit_code=returncode,
                           error=_exit_message(returncode, stderr_tail))
        return Outcome("failed", error_code="missing_result", exit_code=returncode,
                       error="The worker exited without writing result.json")
    size = path.stat().st_size
    if size > max_bytes:
        return Outcome("failed", error_code="output_too_large", exit_code=returncode,
                       error=f"result.json is {size} bytes; the limit is {max_bytes}")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return Outcome("failed", error_code="invalid_result_json", exit_code=returncode,
                       error=f"result.json is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return Outcome("failed", error_code="invalid_result_json", exit_code=returncode,
                       error="result.json must hold a JSON object")
    status = data.get("status", "success")
    if status not in ("success", "error"):
        return Outcome(
            "failed",
            error_code="invalid_result_json",
            exit_code=returncode,
            error=f'result.json: status must be "success" or "error", not {status!r}'[:300],
        )
    outputs = data.get("outputs", {})
    if outputs is None:
        outputs = {}
    if not isinstance(outputs, dict):
        return Outcome(
            "failed",
            error_code="invalid_outputs_shape",
            exit_code=returncode,
            error=f"result.json: outputs must be an object, not {type(outputs).__name__}",
        )
    if status == "error":
        message = data.get("error")
        if not isinstance(message, str) or not message.strip():
            return Outcome(
                "failed",
                outputs=outputs,
                error_code="worker_reported_error",
                exit_code=returncode,
                error="The worker reported an error without a message",
            )
        code = data.get("error_code")
        return Outcome(
            "failed",
            outputs=outputs,
            exit_code=returncode,
            error=message[:4000],
            error_code=code if isinstance(code, str) and code else "worker_reported_error",
        )
    if returncode != 0:
        return Outcome(
            "failed",
            outputs=outputs,
            error_code="execution_error",
            exit_code=returncode,
            error=_exit_message(returncode, stderr_tail),
        )
    decision = data.get("decision_required")
    return Outcome("completed", outputs=outputs, exit_code=returncode,
                   decision_required=decision if isinstance(decision, dict) else None)


def _exit_message(returncode: int, stderr_tail: str) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        head = f"The process was killed by signal {name}"
    else:
        head = f"The process exited with code {returncode}"
    return f"{head}: {stderr_tail}" if stderr_tail else head


def reap_orphans(spool: Path) -> list[int]:
    """Kill process groups that runs of a crashed server left behind: a spool run folder with a
    `pgid` file whose group leader still works in that run's scratch dir. Returns the pgids."""
    killed = []
    for pgid_file in spool.glob(f"run_*/{PGID_FILE}"):
        try:
            pgid = int(pgid_file.read_text())
            cwd = Path(os.readlink(f"/proc/{pgid}/cwd"))
        except (OSError, ValueError):
            continue
        if cwd == (pgid_file.parent / "work").resolve():
            _kill_group(pgid, signal.SIGKILL)
            killed.append(pgid)
    return killed


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _owned_by(path: Path, uid: int | None) -> None:
    if uid is not None:
        os.chown(path, uid, uid)


def _remove(path: Path) -> None:
    """rmtree that also removes folders a worker made unreadable (chmod 000) before it ended."""
    def unlock(_func: Any, failed: str, _exc: Any) -> None:
        for p in (os.path.dirname(failed), failed):
            if not os.path.islink(p):
                with contextlib.suppress(OSError):
                    os.chmod(p, 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            shutil.rmtree(failed, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(failed)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=unlock)


class Executor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._env_locks: dict[str, asyncio.Lock] = {}
        self._shims = settings.spool_dir / ".bin"
        self.sandbox = Sandbox(settings.bwrap_binary) if settings.sandbox == "bwrap" else None
        self.sandbox_problem: str | None = None  # why runs cannot be confined here, if they cannot

    async def start(self) -> None:
        """Check once that a sandbox can be made here; say loudly when runs are not confined."""
        if self.sandbox is None:
            log.warning("FLOOM_SANDBOX=none: runs are NOT confined; every worker runs as the "
                        "server's own user and can read its data directory and secrets")
            return
        self.sandbox_problem = await asyncio.to_thread(self.sandbox.probe)
        if self.sandbox_problem:
            log.error("runs will fail with sandbox_unavailable: %s (install bubblewrap, or set "
                      "FLOOM_SANDBOX=none to run them unconfined)", self.sandbox_problem)

    @contextlib.contextmanager
    def _run_uid(self) -> Iterator[int | None]:
        if self.sandbox is None:
            yield None
        else:
            with self.sandbox.run_uid() as uid:
                yield uid

    # -- preparation ----------------------------------------------------------------------------
    def _python_shims(self) -> Path:
        """`python`/`python3` on unconfined runs' PATH: the base interpreter, without its
        packages."""
        base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
        self._shims.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            link = self._shims / name
            if not link.exists() or link.resolve() != base:
                tmp = self._shims / f".{name}.{os.getpid()}"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(base)
                os.replace(tmp, link)
        return self._shims

    def _prepare(self, job: Job, uid: int | None = None) -> list[str]:
        """Lay out the scratch dir; returns the top-level names the run must not change (the
        worker's files, its contexts and the runner's files), bound read-only when confined."""
        _remove(job.workdir)
        job.workdir.mkdir(parents=True)
        _owned_by(job.workdir, uid)
        fixed: set[str] = set()
        for rel, (data, executable) in job.files.items():
            if rel.split("/", 1)[0] in OUTPUT_NAMES:
                continue
            target = job.workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if executable:
                target.chmod(0o755)
            fixed.add(rel.split("/", 1)[0])
        for name, files in job.contexts.items():
            for rel, data in files.items():
                target = job.workdir / "context" / name / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            fixed.add("context")
        (job.workdir / "inputs.json").write_text(
            json.dumps(job.inputs, indent=2, ensure_ascii=False)
        )
        fixed.add("inputs.json")
        if job.secrets:
            env_local = job.workdir / ENV_LOCAL
            fd = os.open(env_local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(f"{k}={v}\n" for k, v in sorted(job.secrets.items()))
            _owned_by(env_local, uid)
            fixed.add(ENV_LOCAL)
        (job.workdir / TMP).mkdir(exist_ok=True)
        _owned_by(job.workdir / TMP, uid)
        return sorted(fixed - {TMP})

    # -- environments ---------------------------------------------------------------------------
    async def _environment(self, req: bytes, log: LogFn, cancel: asyncio.Event,
                           uid: int | None) -> tuple[Path | None, str | None]:
        """The venv for requirements `req`, built once per content hash, and None; or None and
        why not ("install_failed" or "cancelled"). pip runs in the sandbox too, with network (it
        must reach the package index) and the new environment as the only writable place."""
        digest = hashlib.sha256(sys.version.encode() + b"\0" + req).hexdigest()[:20]
        target = self.settings.envs_dir / digest
        if (target / ENV_OK).exists():
            log("info", f"Using cached environment {digest} for requirements.txt")
            return target, None
        lock = self._env_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if (target / ENV_OK).exists():
                return target, None
            tmp = self.settings.envs_dir / f".{digest}.{os.getpid()}.tmp"
            scratch = self.settings.envs_dir / f".{digest}.{os.getpid()}.build"
            for folder in (tmp, scratch):
                await asyncio.to_thread(_remove, folder)
                folder.mkdir(parents=True)
                _owned_by(folder, uid)
            (tmp / "requirements.txt").write_bytes(req)
            log("info", f"Installing requirements.txt into environment {digest}")
            steps = [
                [sys.executable, "-m", "venv", "--without-pip", str(tmp)],
                [sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python"), "install",
                 "--no-input", "--disable-pip-version-check", "-r", str(tmp / "requirements.txt")],
            ]
            failure = None
            try:
                for argv in steps:
                    ended = await process.run(self._install_command(argv, tmp, scratch, uid, log),
                                              self.sandbox, cancel)
                    if ended.reason == "cancelled":
                        failure = "cancelled"
                    elif ended.reason or ended.returncode != 0:
                        why = "timed out" if ended.reason else f"exit code {ended.returncode}"
                        log("error", f"Installing requirements.txt failed ({why})")
                        failure = "install_failed"
                    if failure:
                        return None, failure
                (tmp / ENV_OK).write_text("ok\n")
                try:
                    os.rename(tmp, target)
                except OSError:  # another server process built it meanwhile
                    pass
                return target, None
            finally:
                await asyncio.to_thread(_remove, scratch)
                await asyncio.to_thread(_remove, tmp)

    def _install_command(self, argv: list[str], tmp: Path, scratch: Path, uid: int | None,
                         log: LogFn) -> process.Command:
        s = self.settings
        confined = self.sandbox is not None
        home = "/tmp" if confined else str(scratch)
        env = {"PATH": f"{tmp}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PIP_NO_INPUT": "1",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", **dict(s.install_env)}
        binds = [Bind(scratch, "/tmp", writable=True), Bind(tmp, str(tmp), writable=True)]
        server_venv = Path(sys.prefix).resolve()
        if server_venv != Path(sys.base_prefix).resolve():  # pip itself lives there
            binds.append(Bind(server_venv, str(server_venv)))
        config = env.get("PIP_CONFIG_FILE")
        if config and os.path.isfile(config):
            binds.append(Bind(Path(config), config))
        spec = Spec(argv=argv, cwd=str(tmp), env=env, binds=binds, network=True,
                    limits=Limits(cpu_seconds=s.max_run_timeout_seconds,
                                  file_bytes=INSTALL_FILE_MB * 1024 * 1024,
                                  memory_bytes=s.run_memory_mb * 1024 * 1024,
                                  processes=s.run_max_processes))
        pip_line = lambda line: log("info", f"pip: {line}")  # noqa: E731
        return process.Command(spec=spec, host_cwd=tmp, on_stdout=pip_line, on_stderr=pip_line,
                               timeout=float(s.max_run_timeout_seconds),
                               grace=s.run_kill_grace_seconds, uid=uid)

    # -- execution ------------------------------------------------------------------------------
    def _run_spec(self, job: Job, venv: Path | None, fixed: list[str]) -> Spec:
        s = self.settings
        confined = self.sandbox is not None
        base = str(Path(getattr(sys, "_base_executable", sys.executable)).resolve())
        shims = SHIMS if confined else str(self._python_shims())
        path = [shims, "/usr/local/bin", "/usr/bin", "/bin"]
        env = {
            "HOME": WORK if confined else str(job.workdir),
            "TMPDIR": "/tmp" if confined else str(job.workdir / TMP),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            "FLOOM_RUN_ID": job.run_id, "FLOOM_WORKER_ID": job.worker_id,
            "FLOOM_TRACE_ID": "trace_" + hashlib.sha256(job.run_id.encode()).hexdigest()[:16],
        }
        # /tmp first: the data dir (and so a venv) may itself lie under the host's /tmp.
        binds = [Bind(job.workdir / TMP, "/tmp", writable=True),
                 Bind(job.workdir / TMP, "/dev/shm", writable=True),
                 Bind(job.workdir, WORK, writable=True)]
        binds += [Bind(job.workdir / name, f"{WORK}/{name}") for name in fixed]
        if venv is not None:
            path.insert(0, str(venv / "bin"))
            env["VIRTUAL_ENV"] = str(venv)
            binds.append(Bind(venv, str(venv)))
        env["PATH"] = ":".join(path)
        env.update(job.extra_env)
        env.update(job.secrets)
        return Spec(
            argv=["/bin/sh", "-c", job.command], cwd=WORK if confined else str(job.workdir),
            env=env, binds=binds, symlinks={f"{SHIMS}/python": base, f"{SHIMS}/python3": base},
            network=job.network,
            limits=Limits(cpu_seconds=int(job.timeout) + 5,
                          file_bytes=s.run_file_size_mb * 1024 * 1024,
                          memory_bytes=(job.memory_mb or s.run_memory_mb) * 1024 * 1024,
                          processes=s.run_max_processes))

    async def run(self, job: Job, log: LogFn, cancel: asyncio.Event) -> Outcome:
        """Execute `job`; never raises for worker faults (they become failed Outcomes). On task
        cancellation (server shutdown) every process is killed and CancelledError propagates."""
        redactor = Redactor(job.secrets)

        def safe_log(level: str, message: str) -> None:
            log(level, redactor.line(message))

        if self.sandbox is not None and self.sandbox_problem is not None:
            # Checked again: bubblewrap may have been installed since start-up.
            self.sandbox_problem = await asyncio.to_thread(self.sandbox.probe)
            if self.sandbox_problem is not None:
                return Outcome("failed", error_code="sandbox_unavailable",
                               error=f"Runs are confined with bubblewrap, which cannot run here: "
                                     f"{self.sandbox_problem}. Install it (Debian package "
                                     "bubblewrap) or set FLOOM_SANDBOX=none to run unconfined")
        try:
            with self._run_uid() as uid:
                fixed = await asyncio.to_thread(self._prepare, job, uid)
                venv = None
                if "requirements.txt" in job.files:
                    venv, failure = await self._environment(job.files["requirements.txt"][0],
                                                            safe_log, cancel, uid)
                    if failure == "install_failed":
                        return Outcome("failed", error_code="install_failed",
                                       error="Installing requirements.txt failed; see the run logs")
                if cancel.is_set():
                    return Outcome("cancelled", error_code="cancelled_before_start")
                outcome = await self._execute(job, venv, fixed, uid, safe_log, cancel)
                outcome.outputs = redactor.value(outcome.outputs)
                outcome.error = redactor.value(outcome.error)
                outcome.decision_required = redactor.value(outcome.decision_required)
                if outcome.status != "cancelled":
                    outcome.artifacts = await asyncio.to_thread(
                        artifacts.collect, job.workdir, job.artifacts_dir, redactor,
                        self.settings.run_max_artifact_bytes, safe_log)
                return outcome
        finally:
            await asyncio.to_thread(_remove, job.workdir)

    async def _execute(self, job: Job, venv: Path | None, fixed: list[str], uid: int | None,
                       log: LogFn, cancel: asyncio.Event) -> Outcome:
        s = self.settings
        stderr_tail: list[str] = []

        def on_err(line: str) -> None:
            stderr_tail[:] = (stderr_tail + [line])[-3:]
            log("warning", line)

        def started(pid: int) -> None:
            # Remembered so that a restart after a crash can stop a process group left behind.
            (job.workdir.parent / PGID_FILE).write_text(str(pid))
            how = (f"sandboxed, network {'shared (egress)' if job.network else 'none'}"
                   if self.sandbox is not None else "NOT sandboxed")
            log("info", f"Started `{job.command}` (pid {pid}, timeout {job.timeout:g}s, {how})")

        ended = await process.run(process.Command(
            spec=self._run_spec(job, venv, fixed), host_cwd=job.workdir,
            on_stdout=lambda line: log("info", line), on_stderr=on_err, timeout=job.timeout,
            grace=s.run_kill_grace_seconds, uid=uid, on_start=started,
            quota=process.Quota(job.workdir, s.run_scratch_mb * 1024 * 1024)), self.sandbox, cancel)
        rc = ended.returncode
        if ended.reason == "cancelled":
            log("warning", "Run cancelled; its processes were stopped")
            return Outcome("cancelled", error_code="user_cancel", error="Cancelled by user",
                           exit_code=rc)
        if ended.reason == "timeout":
            log("error", f"Timed out after {job.timeout:g}s; its processes were stopped")
            return Outcome("failed", error_code="timeout", exit_code=rc,
                           error=f"The run exceeded its timeout of {job.timeout:g} seconds")
        if ended.reason == "scratch_full":
            log("error", f"Stopped: the scratch directory grew past {s.run_scratch_mb} MB")
            return Outcome("failed", error_code="scratch_limit_exceeded", exit_code=rc,
                           error=f"The run wrote more than {s.run_scratch_mb} MB (or "
                                 f"{process.Quota.max_entries:,} files) to its scratch directory")
        log("info", f"Process exited with code {rc}")
        return await asyncio.to_thread(read_result, job.workdir, rc, s.run_max_result_bytes,
                                       " | ".join(stderr_tail)[-500:])

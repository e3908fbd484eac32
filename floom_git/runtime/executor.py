"""Script runner: lays a worker's files (from its pinned commit) into a scratch dir, installs its
requirements.txt into a virtual environment cached by hash, runs `exec.command` in its own
process group with a scrubbed environment, rlimits and a timeout, streams stdout/stderr as log
lines, then reads result.json (REFERENCE.md §1.8) and collects out/ files as artifacts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import resource
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floom_git.config import Settings
from floom_git.schemas.run import Artifact
from floom_git.services.runs import Outcome, iso, now

LogFn = Callable[[str, str], None]  # (level, message)
MAX_LINE = 16 * 1024
READ_CHUNK = 65536
ENV_OK = ".floom-ok"
PGID_FILE = "pgid"


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


def _scrub(text: str, secrets: dict[str, str]) -> str:
    for name, value in secrets.items():
        if len(value) >= 4 and value in text:
            text = text.replace(value, f"<REDACTED:{name}>")
    return text


def _scrub_value(value: Any, secrets: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _scrub(value, secrets)
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v, secrets) for k, v in value.items()}
    return value


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
        return Outcome("failed", error_code="invalid_result_json", exit_code=returncode,
                       error=f"result.json: status must be \"success\" or \"error\", not {status!r}"[:300])
    outputs = data.get("outputs", {})
    if outputs is None:
        outputs = {}
    if not isinstance(outputs, dict):
        return Outcome("failed", error_code="invalid_outputs_shape", exit_code=returncode,
                       error=f"result.json: outputs must be an object, not {type(outputs).__name__}")
    if status == "error":
        message = data.get("error")
        if not isinstance(message, str) or not message.strip():
            return Outcome("failed", outputs=outputs, error_code="worker_reported_error",
                           exit_code=returncode, error="The worker reported an error without a message")
        code = data.get("error_code")
        return Outcome("failed", outputs=outputs, exit_code=returncode, error=message[:4000],
                       error_code=code if isinstance(code, str) and code else "worker_reported_error")
    if returncode != 0:
        return Outcome("failed", outputs=outputs, error_code="execution_error", exit_code=returncode,
                       error=_exit_message(returncode, stderr_tail))
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


def _limits(cpu_seconds: int, memory_bytes: int | None, file_bytes: int) -> Callable[[], None]:
    def clamp(kind: int, value: int) -> None:
        _soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))

    def apply() -> None:  # runs in the child between fork and exec
        clamp(resource.RLIMIT_CPU, cpu_seconds)
        clamp(resource.RLIMIT_FSIZE, file_bytes)
        clamp(resource.RLIMIT_NOFILE, 1024)
        clamp(resource.RLIMIT_CORE, 0)
        if memory_bytes:
            clamp(resource.RLIMIT_AS, memory_bytes)

    return apply


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


class Executor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._env_locks: dict[str, asyncio.Lock] = {}
        self._shims = settings.spool_dir / ".bin"

    # -- preparation ----------------------------------------------------------------------------
    def _python_shims(self) -> Path:
        """`python`/`python3` on the runs' PATH: the server's base interpreter, without its packages."""
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

    def _prepare(self, job: Job) -> None:
        if job.workdir.exists():
            shutil.rmtree(job.workdir)
        job.workdir.mkdir(parents=True)
        for rel, (data, executable) in job.files.items():
            target = job.workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if executable:
                target.chmod(0o755)
        for name, files in job.contexts.items():
            for rel, data in files.items():
                target = job.workdir / "context" / name / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        (job.workdir / "inputs.json").write_text(json.dumps(job.inputs, indent=2, ensure_ascii=False))
        if job.secrets:
            env_local = job.workdir / ".env.local"
            fd = os.open(env_local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.writelines(f"{k}={v}\n" for k, v in sorted(job.secrets.items()))
        (job.workdir / ".tmp").mkdir()

    async def _environment(self, req: bytes, log: LogFn) -> Path | None:
        """The venv for requirements `req`, built once per content hash; None if install failed."""
        digest = hashlib.sha256(sys.version.encode() + b"\0" + req).hexdigest()[:20]
        target = self.settings.envs_dir / digest
        if (target / ENV_OK).exists():
            log("info", f"Using cached environment {digest} for requirements.txt")
            return target
        lock = self._env_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if (target / ENV_OK).exists():
                return target
            tmp = self.settings.envs_dir / f".{digest}.{os.getpid()}.tmp"
            await asyncio.to_thread(shutil.rmtree, tmp, True)
            tmp.mkdir(parents=True)
            (tmp / "requirements.txt").write_bytes(req)
            log("info", f"Installing requirements.txt into environment {digest}")
            python = tmp / "bin" / "python"
            steps = [
                [sys.executable, "-m", "venv", "--without-pip", str(tmp)],
                [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-input",
                 "--disable-pip-version-check", "-r", str(tmp / "requirements.txt")],
            ]
            for argv in steps:
                proc = await asyncio.create_subprocess_exec(
                    *argv, cwd=str(tmp), stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                assert proc.stdout is not None
                await _pump(proc.stdout, lambda line: log("info", f"pip: {line}"))
                if await proc.wait() != 0:
                    log("error", f"Installing requirements.txt failed (exit code {proc.returncode})")
                    await asyncio.to_thread(shutil.rmtree, tmp, True)
                    return None
            (tmp / ENV_OK).write_text("ok\n")
            try:
                os.rename(tmp, target)
            except OSError:  # another server process built it meanwhile
                await asyncio.to_thread(shutil.rmtree, tmp, True)
            return target

    def _env(self, job: Job, venv: Path | None) -> dict[str, str]:
        path = [str(self._python_shims()), "/usr/local/bin", "/usr/bin", "/bin"]
        env = {
            "HOME": str(job.workdir), "TMPDIR": str(job.workdir / ".tmp"), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            "FLOOM_RUN_ID": job.run_id, "FLOOM_WORKER_ID": job.worker_id,
            "FLOOM_TRACE_ID": "trace_" + hashlib.sha256(job.run_id.encode()).hexdigest()[:16],
        }
        if venv is not None:
            path.insert(0, str(venv / "bin"))
            env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = ":".join(path)
        env.update(job.extra_env)
        env.update(job.secrets)
        return env

    # -- execution ------------------------------------------------------------------------------
    async def run(self, job: Job, log: LogFn, cancel: asyncio.Event) -> Outcome:
        """Execute `job`; never raises for worker faults (they become failed Outcomes). On task
        cancellation (server shutdown) the process group is killed and CancelledError propagates."""
        def safe_log(level: str, message: str) -> None:
            log(level, _scrub(message, job.secrets))

        try:
            await asyncio.to_thread(self._prepare, job)
            venv = None
            if "requirements.txt" in job.files:
                venv = await self._environment(job.files["requirements.txt"][0], safe_log)
                if venv is None:
                    return Outcome("failed", error_code="install_failed",
                                   error="Installing requirements.txt failed; see the run logs")
            if cancel.is_set():
                return Outcome("cancelled", error_code="cancelled_before_start")
            outcome = await self._spawn(job, venv, safe_log, cancel)
            if outcome.outputs is not None:
                outcome.outputs = _scrub_value(outcome.outputs, job.secrets)
            if outcome.status != "cancelled":
                outcome.artifacts = await asyncio.to_thread(self._collect, job, safe_log)
            return outcome
        finally:
            await asyncio.to_thread(shutil.rmtree, job.workdir, True)

    async def _spawn(self, job: Job, venv: Path | None, log: LogFn, cancel: asyncio.Event) -> Outcome:
        s = self.settings
        memory = (job.memory_mb or s.run_memory_mb) * 1024 * 1024
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", job.command, cwd=str(job.workdir), env=self._env(job, venv),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
            preexec_fn=_limits(int(job.timeout) + 5, memory, s.run_file_size_mb * 1024 * 1024),
        )
        # Remembered so that a restart after a crash can stop a process group left behind.
        (job.workdir.parent / PGID_FILE).write_text(str(proc.pid))
        log("info", f"Started `{job.command}` (pid {proc.pid}, timeout {job.timeout:g}s)")
        stderr_tail: list[str] = []

        def on_err(line: str) -> None:
            stderr_tail[:] = (stderr_tail + [line])[-3:]
            log("warning", line)

        assert proc.stdout is not None and proc.stderr is not None
        readers = [asyncio.ensure_future(_pump(proc.stdout, lambda line: log("info", line))),
                   asyncio.ensure_future(_pump(proc.stderr, on_err))]
        waiter = asyncio.ensure_future(proc.wait())
        cancelled = asyncio.ensure_future(cancel.wait())
        reason = None
        try:
            done, _ = await asyncio.wait({waiter, cancelled}, timeout=job.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                reason = "cancelled" if cancelled in done else "timeout"
                await self._stop(proc, waiter)
        finally:
            cancelled.cancel()
            if not waiter.done():  # the server is stopping: leave no process behind
                _kill_group(proc.pid, signal.SIGKILL)
                await asyncio.shield(waiter)
            _kill_group(proc.pid, signal.SIGKILL)  # children left running in the group
            _done, pending = await asyncio.wait(readers, timeout=5)
            for task in pending:
                task.cancel()
        rc = proc.returncode if proc.returncode is not None else -9
        if reason == "cancelled":
            log("warning", "Run cancelled; the process group was stopped")
            return Outcome("cancelled", error_code="user_cancel", error="Cancelled by user",
                           exit_code=rc)
        if reason == "timeout":
            log("error", f"Timed out after {job.timeout:g}s; the process group was stopped")
            return Outcome("failed", error_code="timeout", exit_code=rc,
                           error=f"The run exceeded its timeout of {job.timeout:g} seconds")
        log("info", f"Process exited with code {rc}")
        return await asyncio.to_thread(read_result, job.workdir, rc, s.run_max_result_bytes,
                                       " | ".join(stderr_tail)[-500:])

    async def _stop(self, proc: asyncio.subprocess.Process, waiter: asyncio.Future[int]) -> None:
        """SIGTERM to the process group, then SIGKILL after the grace period."""
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.settings.run_kill_grace_seconds)
        except TimeoutError:
            _kill_group(proc.pid, signal.SIGKILL)
            await waiter

    def _collect(self, job: Job, log: LogFn) -> list[Artifact]:
        """Copy out/ files (and files listed in result.json `artifacts`) to the artifacts dir."""
        candidates: list[str] = []
        out = job.workdir / "out"
        if out.is_dir():
            for dirpath, dirnames, names in os.walk(out):
                dirnames.sort()
                for name in sorted(names):
                    candidates.append((Path(dirpath) / name).relative_to(job.workdir).as_posix())
        listed = _listed_artifacts(job.workdir)
        candidates += [p for p in listed if p not in candidates]
        artifacts: list[Artifact] = []
        total = 0
        root = job.workdir.resolve()
        for rel in candidates:
            src = job.workdir / rel
            if src.is_symlink() or not src.is_file() or root not in src.resolve().parents:
                continue
            size = src.stat().st_size
            if total + size > self.settings.run_max_artifact_bytes:
                log("warning", f"Artifact {rel} skipped: artifacts exceed "
                               f"{self.settings.run_max_artifact_bytes} bytes")
                continue
            total += size
            dest = job.artifacts_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            media = mimetypes.guess_type(rel)[0] or "application/octet-stream"
            artifacts.append(Artifact(
                id="art_" + hashlib.sha256(rel.encode()).hexdigest()[:12], name=Path(rel).name,
                path=rel, size_bytes=size, media_type=media, created_at=iso(now())))
        return artifacts


def _listed_artifacts(workdir: Path) -> list[str]:
    try:
        data = json.loads((workdir / "result.json").read_bytes())
    except (OSError, ValueError):
        return []
    items = data.get("artifacts") if isinstance(data, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        rel = item.get("path") if isinstance(item, dict) else item
        if isinstance(rel, str) and rel and not rel.startswith("/") and ".." not in rel.split("/"):
            out.append(rel.removeprefix("./"))
    return out


async def _pump(stream: asyncio.StreamReader, emit: Callable[[str], None]) -> None:
    """Read a pipe to its end, emitting each line (over-long lines are split)."""
    def lines(data: bytes) -> None:
        # Pieces are cut at multiples of MAX_LINE from the line start, however reads split it.
        for start in range(0, max(len(data), 1), MAX_LINE):
            emit(data[start:start + MAX_LINE].decode("utf-8", "replace").rstrip("\r"))

    buf = b""
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines(line)
        while len(buf) > MAX_LINE:
            emit(buf[:MAX_LINE].decode("utf-8", "replace"))
            buf = buf[MAX_LINE:]
    if buf:
        lines(buf)

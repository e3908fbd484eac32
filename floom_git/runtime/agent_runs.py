"""Agent runs (worker entry SKILL.md), the run engine's second way to execute a run: the worker's
contexts at `worker_sha` laid out read-only in the run's state dir, the tool loop of
floom_git.agents against the workspace's provider, every step in the run's log and streams, and
usage, cost and tool calls in its record. `request_approval` parks the run with its transcript
fsync'd in the spool; the decision resumes the same run, in this process or after a restart.

An agent executes no code: its tools are in-process reads of the mounted contexts (symlinks and
paths outside them refused) and its own outputs, so no sandbox is involved. A code tool added
later must run through runtime/sandbox.py like a script.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from floom_git import paths
from floom_git.agents import transcript as transcripts
from floom_git.agents.config import AgentConfig, NeedsSetup, make_provider
from floom_git.agents.events import (
    AgentEnd,
    AgentLog,
    Event,
    ModelTurn,
    ProviderRetry,
    ToolCallRecord,
)
from floom_git.agents.loop import AgentResult, Limits, run_agent
from floom_git.agents.outputs import OutputSink
from floom_git.agents.pricing import PriceTable
from floom_git.agents.prompt import first_message
from floom_git.agents.run_tools import agent_run_tools
from floom_git.agents.transcript import Transcript
from floom_git.agents.turn import RetryPolicy
from floom_git.config import Settings
from floom_git.errors import InvalidInput
from floom_git.runtime import artifacts
from floom_git.runtime.redaction import Redactor
from floom_git.schemas.manifest import Manifest
from floom_git.schemas.run import AgentUsage, RunRecord, ToolCall
from floom_git.services import agent_setup, runs
from floom_git.services.connection_files import declared
from floom_git.services.connection_tools import (
    ConnectionFailed,
    ConnectionToolset,
    MissingConnections,
)
from floom_git.services.connections import Connections
from floom_git.services.run_records import ARTIFACTS, RunStore
from floom_git.services.secrets import SecretStore
from floom_git.services.workspaces import Workspace
from floom_git.storage.git_types import FileMode
from floom_git.storage.spool import fsync_write

STATE_DIR = (
    "agents"  # spool/<ws uid>/agents/<run_id>/: transcript.json and work/ (outputs, contexts)
)
TRANSCRIPT = "transcript.json"
PASSING = ("turn_start", "text_delta", "tool_call_start")  # shown live, never logged
LogFn = Any  # (level, message) -> None, as the run engine gives it


def load_prices(settings: Settings) -> PriceTable:
    """The built-in prices with FLOOM_AGENT_PRICES on top; ValueError naming the bad field."""
    try:
        return PriceTable.load(settings.agent_prices)
    except InvalidInput as exc:
        raise ValueError(f"FLOOM_AGENT_PRICES: {exc.message}") from None


class AgentRunner:
    def __init__(self, settings: Settings, secrets: SecretStore) -> None:
        self.settings = settings
        self.secrets = secrets
        self.connections: Connections | None = None  # set by the app: workers' connections
        self.prices = load_prices(settings)  # once: a price file is read at start-up only

    def state_dir(self, ws: Workspace, run_id: str) -> Path:
        return RunStore.of(ws).spool / STATE_DIR / run_id

    def forget(self, ws: Workspace, run_id: str) -> None:
        """Drop what a run kept for resuming (it has ended for good)."""
        shutil.rmtree(self.state_dir(ws, run_id), ignore_errors=True)

    def sweep(self, ws: Workspace) -> None:
        """At start-up: drop the state of runs that will never resume (ended or unknown)."""
        store = RunStore.of(ws)
        root = store.spool / STATE_DIR
        if not root.is_dir():
            return
        for child in root.iterdir():
            entry = store.index.get(child.name)
            if entry is None or entry.status not in ("pending_approval", "queued", "running"):
                shutil.rmtree(child, ignore_errors=True)

    async def run(
        self,
        ws: Workspace,
        record: RunRecord,
        manifest: Manifest,
        secrets: dict[str, str],
        emit: LogFn,
        cancel: asyncio.Event,
    ) -> runs.Outcome | None:
        """Run, or resume after its approval, an agent run; the Outcome to finish it with, or
        None when it is parked (pending_approval, already recorded). Worker, provider and
        connection faults become failed Outcomes; task cancellation (shutdown) propagates."""
        config = await asyncio.to_thread(
            agent_setup.resolve, ws, manifest.model,
            lambda name: self.secrets.values(ws.uid, [name]).get(name))
        if isinstance(config, NeedsSetup):
            return runs.Outcome("failed", error_code="needs_setup", error=config.reason)
        known = dict(secrets)
        if config.api_key_secret:
            known[config.api_key_secret] = config.api_key
        state = self.state_dir(ws, record.id)
        work = state / "work"
        transcript = await asyncio.to_thread(self._resume_point, ws, record, state)
        if isinstance(transcript, runs.Outcome):
            return transcript
        mounts = await asyncio.to_thread(_mount_contexts, ws, record, manifest, work)
        outputs = OutputSink(
            manifest.exec.outputs, work, transcript.outputs if transcript else None
        )
        step = _Attempt(ws, record, manifest, config, known, transcript, mounts, outputs, emit)
        loop = asyncio.ensure_future(self._attempt(step))
        stop = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({loop, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not loop.done():
                loop.cancel()  # cancel = the loop's task cancelled (also on shutdown)
                await asyncio.gather(loop, return_exceptions=True)
        redactor, transcript = step.redactor, step.transcript
        if transcript is not None:
            self._account(record, transcript, redactor)
        if loop.cancelled():
            emit("warning", "Run cancelled; the agent was stopped")
            return runs.Outcome("cancelled", error_code="user_cancel", error="Cancelled by user")
        result = loop.result()
        if isinstance(result, runs.Outcome):
            return result
        assert transcript is not None
        if result.status == "pending_approval":
            await asyncio.to_thread(fsync_write, state / TRANSCRIPT, transcripts.encode(transcript))
            asked = result.approval
            assert asked is not None
            runs.park(ws, record, manifest, label=redactor.line(asked.label),
                      preview=redactor.line(asked.preview), tool_call_id=asked.call_id)
            return None
        return await self._ended(ws, record, result, work, redactor, emit)

    async def _attempt(self, step: _Attempt) -> AgentResult | runs.Outcome:
        """Open the worker's connections, then run the loop with their tools and the built-in
        ones; the sessions are closed when it ends, however it ends. A declared connection that
        is missing or cannot be opened fails the run before the model is called."""
        ws, record, manifest = step.ws, step.record, step.manifest
        toolset = self._toolset(step)
        try:
            remote = await toolset.__aenter__() if toolset is not None else []
        except (MissingConnections, ConnectionFailed) as exc:
            step.emit("error", step.redactor.line(exc.message))
            await asyncio.to_thread(self.forget, ws, record.id)  # it ends here for good
            return runs.Outcome("failed", error_code=exc.error_code,
                                error=step.redactor.line(exc.message))
        try:
            if toolset is not None:
                step.redactor = Redactor(step.known | toolset.sent)
                step.emit("info", "Connections: " + ", ".join(
                    f"{t.name} ({t.connection_id})" for t in remote) if remote
                    else "Connections: no tools offered")
            sink = _RunSink(RunStore.of(ws), record, step.redactor)
            tools = agent_run_tools(mounts=step.mounts, outputs=step.outputs, sink=sink,
                                    disabled=manifest.exec.disable_tools, extra=remote)
            config = step.config
            if step.transcript is None:
                skill = await asyncio.to_thread(_skill, ws, record, manifest)
                user = first_message(record.inputs, manifest.exec.outputs, step.mounts,
                                     [t.name for t in tools])
                step.transcript = Transcript.start(provider=config.provider, model=config.model,
                                                   system=skill, user=user)
                step.emit("info", f"Agent: {config.provider} model {config.model}, tools "
                                  f"{', '.join(t.name for t in tools)}")
            else:
                step.emit("info", f"Resumed: the approval was {record.approval.status}"  # type: ignore[union-attr]
                                  f" by {record.approval.decided_by}")  # type: ignore[union-attr]
            timeout = float(min(manifest.limits.timeout_seconds,
                                self.settings.max_run_timeout_seconds))
            provider = make_provider(config, timeout=timeout)
            try:
                return await run_agent(
                    provider, step.transcript, tools, sink,
                    limits=Limits.of(manifest.limits, timeout_s=timeout),
                    policy=RetryPolicy(stall_timeout=self.settings.agent_stall_seconds),
                    outputs=step.outputs, prices=self.prices)
            finally:
                await provider.aclose()
        finally:
            if toolset is not None:
                await toolset.__aexit__(None, None, None)

    def _toolset(self, step: _Attempt) -> ConnectionToolset | None:
        """The worker's connections (None when it declares none)."""
        if not declared(step.manifest):
            return None
        if self.connections is None:
            raise RuntimeError("agent runs were given no connection service")
        return ConnectionToolset(self.connections, step.ws, step.manifest, run_id=step.record.id,
                                 scrubber=lambda sent: Redactor(sent).value)

    def _resume_point(self, ws: Workspace, record: RunRecord,
                      state: Path) -> Transcript | runs.Outcome | None:
        """The parked transcript with its decision filled in; None for a fresh run; a failed
        Outcome when the state of a parked run is gone."""
        approval = record.approval
        if approval is None or approval.tool_call_id is None:
            shutil.rmtree(state, ignore_errors=True)  # left by an earlier attempt of this run
            return None
        try:
            transcript = transcripts.decode((state / TRANSCRIPT).read_bytes())
        except (OSError, ValueError) as exc:
            return runs.Outcome(
                "failed",
                error_code="agent_state_lost",
                error=f"The agent's saved state cannot be read ({exc}); run it again",
            )
        if transcript.pending is not None:
            transcript.decide(approval.status == "approved", reason=approval.reason,
                              decided_by=approval.decided_by)
        return transcript

    def _account(self, record: RunRecord, transcript: Transcript, redactor: Redactor) -> None:
        """Usage, cost and tool calls so far onto the record (committed with its next state)."""
        usage = transcript.usage
        record.total_tokens = usage.total
        record.cost_usd = self.prices.cost(transcript.model, usage)
        record.agent = AgentUsage(provider=transcript.provider, model=transcript.model,
                                  input_tokens=usage.input_tokens,
                                  output_tokens=usage.output_tokens, turns=transcript.turns)
        record.tool_calls = [ToolCall(
            id=c.id, name=c.name, arguments=redactor.value(c.arguments),
            result=redactor.value(c.result), error=redactor.value(c.error),
            error_code=c.error_code, turn=c.turn, duration_ms=c.duration_ms,
            connection_id=c.connection_id)
            for c in transcript.tool_calls]

    async def _ended(self, ws: Workspace, record: RunRecord, result: AgentResult, work: Path,
                     redactor: Redactor, emit: LogFn) -> runs.Outcome:
        store = RunStore.of(ws)
        kept = await asyncio.to_thread(
            artifacts.collect, work, store.spool_dir(record.id) / ARTIFACTS, redactor,
            self.settings.run_max_artifact_bytes, emit)
        await asyncio.to_thread(self.forget, ws, record.id)
        return runs.Outcome(result.status, outputs=redactor.value(result.outputs),
                            error=redactor.value(result.error), error_code=result.error_code,
                            artifacts=kept)


@dataclass
class _Attempt:
    """One go of a run's loop; `transcript` and `redactor` are read after it ends, however it
    ends (the redactor learns the connections' credentials once they are opened)."""

    ws: Workspace
    record: RunRecord
    manifest: Manifest
    config: AgentConfig
    known: dict[str, str]  # secret name -> value: the worker's and the provider key
    transcript: Transcript | None
    mounts: dict[str, Path]
    outputs: OutputSink
    emit: LogFn
    redactor: Redactor = field(init=False)

    def __post_init__(self) -> None:
        self.redactor = Redactor(self.known)


class _RunSink:
    """The agent's events into the run: each step a log line carrying the event, the passing
    ones (text as it arrives, a turn or a tool call starting) to the live streams only."""

    def __init__(self, store: RunStore, record: RunRecord, redactor: Redactor) -> None:
        self.store, self.record, self.redactor = store, record, redactor

    async def __call__(self, event: Event) -> None:
        data = self.redactor.value(msgspec.to_builtins(event))
        if data["type"] in PASSING:
            self.store.append_passing(self.record, data)
            return
        if isinstance(event, ModelTurn):
            self.store.drop_passing(self.record.id)  # its text is in this line now
        level, message = describe(event)
        self.store.append_log(self.record, level, self.redactor.line(message),
                              runs.iso(runs.now()), event=data)


def describe(event: Event) -> tuple[str, str]:
    """(level, one line for people) of a logged agent step."""
    if isinstance(event, ModelTurn):
        asked = (f"asked for {', '.join(c.name for c in event.tool_calls)}" if event.tool_calls
                 else "answered")
        said = f": {event.text[:200]!r}" if event.text else ""
        return "info", (f"Model turn {event.turn} {asked} ({event.usage.input_tokens} in, "
                        f"{event.usage.output_tokens} out, {event.duration_ms} ms){said}")
    if isinstance(event, ToolCallRecord):
        if event.error_code is None:
            return "info", f"Tool {event.name} ok ({event.duration_ms} ms)"
        level = "info" if event.error_code == "skipped" else "warning"
        return level, f"Tool {event.name} {event.error_code}: {event.error}"
    if isinstance(event, ProviderRetry):
        status = f"HTTP {event.status}" if event.status else "no answer"
        return "warning", (f"Provider failed ({status}: {event.message}); retry {event.attempt} "
                           f"in {event.delay_s:g}s")
    if isinstance(event, AgentLog):
        return event.level, event.message
    if isinstance(event, AgentEnd):
        cost = f", ${event.cost_usd:g}" if event.cost_usd is not None else ""
        usage = f"{event.usage.input_tokens} in, {event.usage.output_tokens} out{cost}"
        if event.error_code:
            return "error", f"Agent {event.status} [{event.error_code}]: {event.error} ({usage})"
        return "info", f"Agent {event.status} ({usage})"
    return "info", type(event).__name__


def _skill(ws: Workspace, record: RunRecord, manifest: Manifest) -> str:
    commit = ws.repo.resolve(record.worker_sha)
    data = ws.repo.read_blob(commit, f"{paths.worker_dir(record.worker_id)}/{manifest.entry}")
    return (data or b"").decode("utf-8", errors="replace")


def _mount_contexts(ws: Workspace, record: RunRecord, manifest: Manifest,
                    work: Path) -> dict[str, Path]:
    """The worker's contexts at worker_sha under work/context/<name>/, read-only: regular files
    only (no symlinks, no secret-bearing names). Laid out again on resume."""
    commit = ws.repo.resolve(record.worker_sha)
    root = work / "context"
    shutil.rmtree(root, ignore_errors=True)  # read-only files in writable folders: removable
    mounts: dict[str, Path] = {}
    for name, _writeable in manifest.context_mounts:
        if not paths.CONTEXT_NAME_RE.match(name):
            continue
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for rel, blob in ws.repo.files_at(commit, paths.context_dir(name)).items():
            if blob.filemode == FileMode.LINK or paths.is_secret_file(rel):
                continue
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data)
            target.chmod(0o444)
        mounts[name] = folder
    return mounts

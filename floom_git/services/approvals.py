"""Approvals (REFERENCE §3.4, decided differently where DESIGN asks for one explicit model):
a pending approval lives in its run's record; approving completes the run and starts the
follow-up run, rejecting fails it (`approval_rejected`), expiry fails it (`approval_expired`).
An approval an agent asked for (request_approval, `tool_call_id` set) is different: approving or
rejecting queues the same run again, and its tool loop resumes with the decision."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

from floom_git.errors import Conflict, InvalidInput, NotFound
from floom_git.schemas.run import Approval, ApproveBody, RejectBody, RunRecord, TimelineEvent
from floom_git.services.actor import Actor
from floom_git.services.run_records import RunStore
from floom_git.services.runs import create_run, iso, now, store, transition
from floom_git.services.workspaces import Workspace


def _pending(ws: Workspace, run_id: str) -> tuple[RunStore, RunRecord, Approval]:
    s = store(ws)
    record = s.get(run_id)
    approval = record.approval
    if approval is None:
        raise Conflict(f"Run {run_id} is not awaiting approval")
    if approval.status != "pending":
        raise Conflict(f"Approval {approval.id} already decided ({approval.status})")
    if record.status != "pending_approval":
        raise Conflict(f"Run {run_id} is not awaiting approval")
    return s, record, approval


def _decided(record: RunRecord, decision: str, approval: Approval, **data: Any) -> None:
    record.seq += 1
    payload = {"decision": decision, "approval_id": approval.id,
               **{k: v for k, v in data.items() if v is not None}}
    record.timeline.append(TimelineEvent(seq=record.seq, type="approval_decided", at=iso(now()),
                                         data=payload))


def _resume(s: RunStore, ws: Workspace, record: RunRecord, approval: Approval,
            decision: Literal["approved", "rejected"], actor: Actor, reason: str | None,
            note: Any) -> None:
    """Record the decision on an agent's approval and queue its run again to go on with it."""
    approval.status = decision
    approval.decided_at, approval.decided_by = iso(now()), actor.user_id
    approval.reason = reason
    approval.annotation = note
    _decided(record, decision, approval, reason=reason)
    transition(record, "queued", resumes_after=approval.id)
    s.put(record)
    if s.hooks is not None:
        s.hooks.submit(ws.uid, record.id)


def approve(ws: Workspace, run_id: str, body: ApproveBody,
            actor: Actor) -> tuple[RunRecord, RunRecord | None]:
    """Approve: start the follow-up run (decision "approved", approved_output = edited or proposed
    outputs) and complete the original. Returns (original, follow-up); for an agent's approval
    the run itself resumes and there is no follow-up. Conflict if decided; InvalidInput for an
    edited output on an agent's approval (the agent writes its own outputs)."""
    s, record, approval = _pending(ws, run_id)
    if approval.tool_call_id is not None:
        if body.edited_output is not None:
            raise InvalidInput("edited_output: an agent's approval takes no edited output; give "
                               "a reason or an annotation, the agent reads them")
        _resume(s, ws, record, approval, "approved", actor, body.reason, body.note)
        return record, None
    output = body.edited_output if body.edited_output is not None else (record.outputs or {})
    follow = create_run(ws, record.worker_id, trigger_source="approval", trigger_ref=approval.id,
                        actor=actor, approval_of=record, approved_output=output)
    end = now()
    approval.status = "approved"
    approval.decided_at, approval.decided_by = iso(end), actor.user_id
    approval.reason = body.reason
    approval.annotation = body.note
    approval.edited_output = body.edited_output
    approval.follow_up_run_id = follow.id
    _decided(record, "approved", approval, follow_up_run_id=follow.id)
    record.completed_at = iso(end)
    transition(record, "completed", follow_up_run_id=follow.id, completed_at=record.completed_at)
    s.put(record)
    return record, follow


def reject(ws: Workspace, run_id: str, body: RejectBody, actor: Actor) -> RunRecord:
    """Reject: the run ends failed with `approval_rejected` and the reason (an agent's run goes
    on, told of the rejection and its reason). Conflict if decided."""
    s, record, approval = _pending(ws, run_id)
    if approval.tool_call_id is not None:
        _resume(s, ws, record, approval, "rejected", actor, body.why, body.note)
        return record
    end = now()
    approval.status = "rejected"
    approval.decided_at, approval.decided_by = iso(end), actor.user_id
    approval.reason = body.why
    approval.annotation = body.note
    _decided(record, "rejected", approval, reason=body.why)
    record.error = f"Rejected: {body.why}" if body.why else "Rejected by reviewer"
    record.error_code = "approval_rejected"
    record.completed_at = iso(end)
    transition(record, "failed", error=record.error, error_code=record.error_code,
               completed_at=record.completed_at)
    s.put(record)
    if s.hooks is not None:
        s.hooks.finished(ws.uid, record)
    return record


def expire_due(ws: Workspace, when: dt.datetime | None = None) -> list[str]:
    """Expire pending approvals past their expires_at: the run fails `approval_expired`."""
    s = store(ws)
    stamp = iso(when or now())
    expired = []
    for entry in list(s.index.values()):
        a = entry.approval
        if entry.status != "pending_approval" or a is None or a.status != "pending":
            continue
        if a.expires_at > stamp:
            continue
        record = s.get(entry.id)
        assert record.approval is not None
        record.approval.status = "expired"
        record.approval.decided_at = stamp
        _decided(record, "expired", record.approval)
        record.error = f"Approval {record.approval.id} expired at {record.approval.expires_at}"
        record.error_code = "approval_expired"
        record.completed_at = stamp
        transition(record, "failed", error=record.error, error_code=record.error_code,
                   completed_at=stamp)
        s.put(record)
        if s.hooks is not None:
            s.hooks.finished(ws.uid, record)
        expired.append(record.id)
    return expired


def approval_run_id(ws: Workspace, approval_id: str) -> str:
    for entry in store(ws).index.values():
        if entry.approval is not None and entry.approval.id == approval_id:
            return entry.id
    raise NotFound("Approval not found")


def list_approvals(ws: Workspace, status: str | None, run_id: str | None,
                   limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    matched = []
    for entry in store(ws).entries():
        a = entry.approval
        if a is None or (status and a.status != status) or (run_id and entry.id != run_id):
            continue
        matched.append({**msgspec.to_builtins(a), "run_id": entry.id, "worker_id": entry.worker_id,
                        "worker_name": entry.worker_name})
    return matched[offset:offset + limit], len(matched)


def pending_count(ws: Workspace) -> int:
    return sum(1 for e in store(ws).index.values()
               if e.approval is not None and e.approval.status == "pending")

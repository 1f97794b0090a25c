"""Pure functions that apply the rule table to a flow run: what the run becomes, and why.

No I/O: each function takes the run as read from the store and returns a `Transition` saying
whether it changed, the run to write, and whether a queue message must be sent. The service
does the compare-and-set write, the history entry and the enqueueing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sluice.exceptions import Conflict, StaleLease
from sluice.models import (
    MAX_RETRY_DELAY_SECONDS,
    SUSPENDED_STATE_NAME,
    AwaitingRetry,
    Cancelled,
    Cancelling,
    FlowRun,
    Pending,
    Scheduled,
    State,
    StateType,
    Suspended,
    TransitionStatus,
)

from ..timemath import seconds, shift
from .rules import Mover, refusal

#: Failing from these states ends an attempt, so the flow's retries apply. (A Cancelling run was
#: meant to stop, so it is not retried; Scheduled counts only while an attempt holds the lease,
#: i.e. its process waits for an in-process retry.)
RETRYABLE_FROM_STATE_TYPES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.PAUSED})
#: A run whose state is one of these should stop when its writes are refused.
STOP_STATE_TYPES = frozenset(
    {StateType.CANCELLING, StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED,
     StateType.CRASHED}
)


@dataclass(frozen=True)
class Transition:
    """The outcome of asking for a state change."""

    status: TransitionStatus
    #: The run as it must be stored (the unchanged input when nothing is written).
    run: FlowRun
    reason: str | None = None
    #: The run changed and must be written (with a history entry when its state changed).
    write: bool = False
    #: The run entered Scheduled in a pool without a queue message: one must be sent.
    enqueue: bool = False
    #: States the run passed through on the way to `run.state` in this one write (a claim
    #: that starts the run: Pending), each with its own history entry and event.
    passed: tuple[State, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status is TransitionStatus.ACCEPT

    @property
    def state(self) -> State:
        return self.run.state


def holds_live_attempt(run: FlowRun) -> bool:
    """Whether a claimed attempt's process is (or should be) alive for this run: it must keep
    heartbeating, and the monitor crashes it when it stops. Includes Scheduled runs whose process
    waits for an in-process retry (the SDK engine retries a flow without leaving its process)."""
    return run.lease is not None and not run.state.is_terminal


def check_lease(run: FlowRun, lease: str | None) -> None:
    """Raise `StaleLease` unless `lease` is the run's current lease.

    Every write of an attempt carries its lease: a request without one is refused, and so is
    any lease for a run without one (never claimed, or back in Scheduled for a new attempt), so
    a worker of an earlier attempt is turned away too. A run that no attempt holds changes only
    through operator actions (cancel, retry), which are not lease-fenced.
    """
    if lease is None:
        raise StaleLease(
            f"flow run {run.id}: a write of a run's attempt must carry the attempt's lease (the "
            "claim or the create gave it); to cancel or retry a run use its cancel or retry "
            "route",
            details={"flow_run_id": run.id, "state": run.state.type.value, "lease": "missing"},
        )
    if lease != run.lease:
        raise StaleLease(
            f"flow run {run.id} is not leased to the caller"
            + (" (a newer attempt holds it)" if run.lease else " (it holds no lease)"),
            details={"flow_run_id": run.id, "state": run.state.type.value},
        )


def propose_state(
    run: FlowRun,
    proposed: State,
    *,
    now: datetime,
    lease: str | None = None,
    expect: StateType | None = None,
    mover: Mover = Mover.REPORT,
) -> Transition:
    """Apply a proposed state to a run.

    `Mover.REPORT` writes (the run's process or worker) must carry the run's lease; stale leases
    raise `StaleLease`. `Mover.SERVER` writes (monitor, user cancel) skip the lease check. A
    Failed or Crashed proposal for a queued run with retries left becomes AwaitingRetry at
    `now + retry_delay_seconds`, loses its lease and is enqueued for a new claim; a lease holder
    that itself proposes Scheduled (the SDK's in-process retry) keeps its lease and is not
    enqueued. Refusals come back as REJECT, or ABORT when the run is being cancelled or already
    ended (its process should stop).
    """
    if mover is Mover.REPORT:
        check_lease(run, lease)
    from_type, to_type = run.state.type, proposed.type
    if proposed.name == SUSPENDED_STATE_NAME and mover is not Mover.SUSPEND:
        # Suspended means no attempt holds the run: only `suspend` makes it, voiding the lease.
        return _refuse(run, "a run is suspended by an operator (POST /flow-runs/{id}/suspend), "
                            "not by a proposed state; a running flow may propose Paused")
    if expect is not None and from_type is not expect:
        return _refuse(run, f"the run is {from_type.value}, not the expected {expect.value}")
    reason = refusal(from_type, to_type, needs_claim=_needs_claim(run), mover=mover)
    if reason is not None:
        return _refuse(run, reason)
    if _should_retry(run, proposed):
        return _accept(run, _awaiting_retry(run, proposed, now), now, same_attempt=False)
    same_attempt = mover is Mover.REPORT and run.lease is not None
    return _accept(run, proposed, now, same_attempt=same_attempt)


def claim(
    run: FlowRun,
    *,
    worker: str,
    new_lease: str,
    now: datetime,
    attempt: int | None = None,
    claim_id: str | None = None,
) -> Transition:
    """A worker claims a queued run: Scheduled -> Pending with a new lease, one more attempt.

    Claiming again for the same attempt by the same worker (its answer was lost) returns the
    existing lease unchanged - with a `claim_id`, only a claim with the same id does: a second
    copy of the run's message, even on the same worker, must not start the attempt twice.
    Raises `Conflict` when the run cannot be claimed (already claimed, not queued, or `attempt`
    names an earlier attempt than the run's current one).
    """
    details = {"flow_run_id": run.id, "state": run.state.type.value, "run_count": run.run_count}
    already_claimed_by_caller = (
        run.state.type is StateType.PENDING
        and run.lease is not None  # a stored run without one was never claimed properly
        and run.worker == worker
        and (attempt is None or run.run_count == attempt + 1)
        and (claim_id is None or claim_id == run.claim_id)
    )
    if already_claimed_by_caller:
        return Transition(TransitionStatus.ACCEPT, run)
    if run.pool is None:
        raise Conflict(
            f"flow run {run.id} is not in a work pool; nothing claims it", details=details
        )
    if run.lease is not None and not run.state.is_terminal:
        raise Conflict(
            f"flow run {run.id} is held by its attempt {run.run_count} (worker {run.worker})",
            details=details,
        )
    if attempt is not None and attempt != run.run_count:
        raise Conflict(
            f"the message is for attempt {attempt} but flow run {run.id} is at attempt "
            f"{run.run_count}",
            details=details,
        )
    reason = refusal(run.state.type, StateType.PENDING, needs_claim=True, mover=Mover.CLAIM)
    if reason is not None:
        raise Conflict(f"flow run {run.id} cannot be claimed: {reason}", details=details)
    pending = Pending(message=f"claimed by {worker}")
    claimed = _enter(run, pending, now, same_attempt=False).model_copy(
        update={"lease": new_lease, "worker": worker, "heartbeat_at": now, "claim_id": claim_id}
    )
    return Transition(TransitionStatus.ACCEPT, claimed, write=True)


def cancel(run: FlowRun, *, now: datetime, message: str | None = None) -> Transition:
    """A user cancels: a run that has not started is Cancelled at once; a started one becomes
    Cancelling until its worker confirms. Cancelling again is a no-op; an ended run is refused."""
    from_type = run.state.type
    if from_type is StateType.CANCELLING:
        return Transition(TransitionStatus.ACCEPT, run, reason="cancellation already requested")
    if is_suspended(run):  # no process to confirm a cancellation
        target = Cancelled(message or "cancelled while suspended")
    elif from_type in (StateType.RUNNING, StateType.PAUSED):
        target = Cancelling(message or "cancellation requested")
    else:
        target = Cancelled(message or "cancelled before it started")
    return propose_state(run, target, now=now, mover=Mover.SERVER)


def retry(run: FlowRun, *, now: datetime, message: str | None = None) -> Transition:
    """A user asks for a new attempt of a Failed or Crashed run: it becomes Scheduled now.

    The run keeps its `run_count`, so the manual retry is one more attempt (the flow's own
    retries are not granted again).
    """
    if not run.state.is_terminal:
        return _refuse(run, f"only a finished run can be retried; it is {run.state.type.value}")
    if run.pool is None:
        return _refuse(run, "the run was not started from a deployment; no worker can run it again")
    reason = refusal(run.state.type, StateType.SCHEDULED, needs_claim=True, mover=Mover.RETRY)
    if reason is not None:
        return _refuse(run, reason)
    again = AwaitingRetry(scheduled_time=now, message=message or "retried by user")
    return _accept(run, again, now, same_attempt=False)


def is_suspended(run: FlowRun) -> bool:
    """Whether the run is Suspended: PAUSED in a pool with no attempt holding it (an in-process
    pause keeps its lease), so it waits for an operator's resume or cancel."""
    return run.state.type is StateType.PAUSED and run.lease is None and run.pool is not None


def suspend(run: FlowRun, *, now: datetime, message: str | None = None) -> Transition:
    """An operator suspends a run: Scheduled (Late, AwaitingRetry), Pending or Running become
    Suspended (type PAUSED) and no attempt holds the run any more: its lease is voided (the
    holder's next heartbeat or write gets 409 and its worker stops the flow process), its queue
    message is void (a claim of a Suspended run is refused) and it holds no concurrency slot.
    Suspending a Suspended run is a no-op; finished or cancelling runs are refused (ABORT)."""
    if is_suspended(run):
        return Transition(TransitionStatus.ACCEPT, run, reason="the run is already suspended")
    if run.pool is None and not run.state.is_terminal:
        return _refuse(run, "the run was not started from a deployment: no worker could run it "
                            "again after a resume; cancel it instead")
    outcome = propose_state(run, Suspended(message or "suspended by an operator"), now=now,
                            mover=Mover.SUSPEND)
    if not outcome.write:
        return outcome
    voided = outcome.run.model_copy(update={
        "lease": None, "heartbeat_at": None, "lease_expires_at": None, "enqueued_at": None,
        # Its slot frees now: limits count only the slot scopes of admitted runs.
        "slot_scopes": (),
        # The suspended attempt's last log lines still land (as a retried attempt's do).
        "ended_lease": run.lease or run.ended_lease,
    })
    return replace(outcome, run=voided, enqueue=False)


def resume(run: FlowRun, *, now: datetime, message: str | None = None) -> Transition:
    """An operator resumes a Suspended run: Scheduled now and enqueued, so a worker claims it
    as a new attempt that runs the flow from the start. Other runs are refused with the
    reason (ABORT when finished or cancelling)."""
    if not is_suspended(run):
        return _refuse(run, f"only a suspended run can be resumed; it is {run.state.name}")
    again = Scheduled(scheduled_time=now, message=message or "resumed by an operator")
    return propose_state(run, again, now=now, mover=Mover.SERVER)


def _needs_claim(run: FlowRun) -> bool:
    return run.pool is not None and run.lease is None


def _should_retry(run: FlowRun, proposed: State) -> bool:
    """Server-side retries are for queued runs: a worker claims the new attempt. (A run without
    a pool has no one to run it again; its own process retries in-process if it can.)"""
    ended_an_attempt = run.state.type in RETRYABLE_FROM_STATE_TYPES or (
        run.state.type is StateType.SCHEDULED and run.lease is not None
    )
    return (
        run.pool is not None
        and proposed.type in (StateType.FAILED, StateType.CRASHED)
        and ended_an_attempt
        and run.run_count <= run.retries
    )


def _awaiting_retry(run: FlowRun, failed: State, now: datetime) -> State:
    details: dict[str, Any] = dict(failed.details or {})
    details.update(
        {"failed_state": failed.name, "attempt": run.run_count, "retries": run.retries}
    )
    # The stored delay may predate its bound (or be absurd): clamped, never an overflow.
    delay = seconds(run.retry_delay_seconds, maximum=MAX_RETRY_DELAY_SECONDS)
    retry_at = shift(now, max(delay, timedelta(0)))
    state = AwaitingRetry(scheduled_time=retry_at, message=failed.message)
    return state.model_copy(update={"details": details})


def _accept(run: FlowRun, state: State, now: datetime, *, same_attempt: bool) -> Transition:
    entered = _enter(run, state, now, same_attempt=same_attempt)
    enqueue = (
        entered.state.type is StateType.SCHEDULED
        and entered.pool is not None
        and entered.lease is None
        and entered.enqueued_at is None
    )
    return Transition(TransitionStatus.ACCEPT, entered, write=True, enqueue=enqueue)


def _refuse(run: FlowRun, reason: str) -> Transition:
    stop = run.state.type in STOP_STATE_TYPES
    return Transition(TransitionStatus.ABORT if stop else TransitionStatus.REJECT, run, reason)


def _enter(run: FlowRun, state: State, now: datetime, *, same_attempt: bool) -> FlowRun:
    """The run after entering `state`: the bookkeeping every accepted transition does.

    `same_attempt`: the process holding the lease goes on (an in-process retry), so entering
    Scheduled keeps the lease and needs no queue message.
    """
    from_type = run.state.type
    update: dict[str, Any] = {"updated": now}
    if state.type is StateType.SCHEDULED:
        scheduled_at = state.scheduled_time or now
        if state.scheduled_time is None:
            state = state.model_copy(update={"scheduled_time": scheduled_at})
        update["scheduled_at"] = scheduled_at
        # Renaming a waiting run (Scheduled -> Late) keeps its queue message and lease.
        renamed = from_type is StateType.SCHEDULED and scheduled_at == run.scheduled_at
        if not (same_attempt or renamed):
            # A new attempt: it needs a new message, and the next claim issues a new lease.
            update.update(lease=None, heartbeat_at=None, end_time=None, enqueued_at=None,
                          lease_expires_at=None, ended_lease=run.lease or run.ended_lease)
    if from_type is StateType.SCHEDULED and state.type in (StateType.PENDING, StateType.RUNNING):
        update["run_count"] = run.run_count + 1
    if state.type is StateType.RUNNING and run.start_time is None:
        update["start_time"] = now
    if state.is_terminal:
        update["end_time"] = now
        # The run's own lease now names its last attempt; an earlier one's is stale.
        update["ended_lease"] = None
    update["state"] = state
    return run.model_copy(update=update)

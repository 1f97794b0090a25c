"""Use cases that move a flow run through its states: set_state, heartbeat, cancel, retry, and
the monitor's mark_crashed (a worker's claim is in `claims`, on the same write path).

Each one reads the run, asks `orchestration` what it becomes, and writes it with
compare-and-set; a lost race re-reads and decides again, so concurrent writers never both win.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sluice.exceptions import Conflict, StaleLease
from sluice.models import (
    Crashed,
    FlowRun,
    HeartbeatRequest,
    HeartbeatResponse,
    SetStateRequest,
    SetStateResponse,
    StateType,
    TransitionStatus,
    Worker,
    utcnow,
)

from .. import orchestration
from ..orchestration import DEFAULT_LEASES, LeasePolicy, Mover, Transition, holds_live_attempt
from ..orchestration.leases import MAX_LEASE
from ..timemath import shift
from ..ports import Metrics, RunQueue, RunStore
from . import event_log
from .attempts import close_open_task_runs, ended_attempt, lease_terms, renew
from .limits import check_state
from .queueing import due_for_enqueue, mark_enqueued, send_run_message

#: Reads-decide-writes rounds before giving up with 409: only a run written this many times
#: concurrently (a pathological client) gets there.
MAX_WRITE_ATTEMPTS = 5
#: Heartbeats tell the worker to stop when its run is in one of these states.
CANCEL_STATE_TYPES = frozenset({StateType.CANCELLING, StateType.CANCELLED})


def set_state(
    flow_run_id: str,
    request: SetStateRequest,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime | None = None,
    current: FlowRun | None = None,
) -> SetStateResponse:
    """Propose a new state for a run (the run's process or its worker).

    Accepted: the run, its history entry and the transition id are written together; a run that
    entered Scheduled (AwaitingRetry) is enqueued again. Refused: status REJECT (or ABORT when the
    run should stop) with the reason, nothing written. A repeated `transition_id` returns ACCEPT
    with the current state. Raises `NotFound`, `StaleLease` (409), `PayloadTooLarge` (message).
    `current`: the run as the caller read it earlier in the same request (decided on instead of
    a read of its own: the write is compare-and-set on its version, and a lost race re-reads).
    """
    now = now or utcnow()
    check_state(request.state)
    outcome = apply_transition(
        flow_run_id,
        lambda run: orchestration.propose_state(
            run, request.state, now=now, lease=request.lease, expect=request.expect
        ),
        transition_id=request.transition_id,
        store=store, queue=queue, metrics=metrics, now=now, current=current,
    )
    return _response(outcome)


def heartbeat(
    flow_run_id: str,
    request: HeartbeatRequest,
    *,
    store: RunStore,
    now: datetime | None = None,
    leases: LeasePolicy = DEFAULT_LEASES,
) -> HeartbeatResponse:
    """The holder of the current attempt renews its lease; the answer says whether to cancel
    and, while the attempt is live, the renewed lease's terms (expiry, renewal interval).

    Updates `heartbeat_at` while the attempt is live and marks the worker as seen. Raises
    `StaleLease` when the caller's lease is not the run's (a newer attempt owns it, or the
    monitor declared the attempt dead) and `NotFound` for an unknown run.
    """
    now = now or utcnow()
    run = store.get_flow_run(flow_run_id)
    orchestration.check_lease(run, request.lease)
    live = holds_live_attempt(run)
    if live:
        # A state change may race the renewal (a cancellation, a crash verdict): `renew` reads
        # it again, and leaves an attempt that ended or changed meanwhile unrenewed.
        run = renew(run, store=store, now=now, leases=leases)
        orchestration.check_lease(run, request.lease)
        live = holds_live_attempt(run)
    record_worker_seen(run, store=store, now=now)
    return HeartbeatResponse(
        cancel_requested=run.state.type in CANCEL_STATE_TYPES, state=run.state,
        **(lease_terms(leases, now) if live else {}),
    )


def cancel_flow_run(
    flow_run_id: str,
    *,
    store: RunStore,
    metrics: Metrics,
    now: datetime | None = None,
    message: str | None = None,
) -> SetStateResponse:
    """Cancel a run: Scheduled/Pending become Cancelled at once, Running/Paused become
    Cancelling until the worker confirms. A finished run is refused (REJECT/ABORT + reason)."""
    now = now or utcnow()
    outcome = apply_transition(
        flow_run_id,
        lambda run: orchestration.cancel(run, now=now, message=message),
        transition_id=None,
        store=store, queue=None, metrics=metrics, now=now,
    )
    return _response(outcome)


def retry_flow_run(
    flow_run_id: str,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime | None = None,
) -> SetStateResponse:
    """Start a new attempt of a Failed or Crashed run: Scheduled now, enqueued. Other runs are
    refused with the reason (REJECT/ABORT)."""
    now = now or utcnow()
    outcome = apply_transition(
        flow_run_id,
        lambda run: orchestration.retry(run, now=now),
        transition_id=None,
        store=store, queue=queue, metrics=metrics, now=now,
    )
    return _response(outcome)


def mark_crashed(
    flow_run_id: str,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    message: str,
    heartbeat_expired_before: datetime | None = None,
    lease: str | None = None,
    lease_expired_before: datetime | None = None,
    now: datetime | None = None,
) -> SetStateResponse:
    """The monitor's verdict on a run whose worker went silent: Crashed (or AwaitingRetry when
    retries are left, enqueued again).

    With `heartbeat_expired_before`, the run is only crashed if its last heartbeat is still older
    than that when written (a heartbeat that arrives meanwhile wins: REJECT); with
    `lease_expired_before`, only if the lease it was last granted expired before that. With
    `lease`, the verdict is about that attempt only: if the run no longer holds it when written (the attempt
    ended meanwhile - its worker reported the crash and the run awaits its retry, or a new
    attempt claimed it) nothing is written (REJECT). Without that check a late verdict would
    crash the run's next attempt before it started and end the run, retries or not.
    """
    now = now or utcnow()

    def decide(run: FlowRun) -> Transition:
        if lease is not None and (run.lease != lease or not holds_live_attempt(run)):
            return Transition(TransitionStatus.REJECT, run,
                              reason="the attempt the verdict was about already ended")
        beat = run.heartbeat_at
        if heartbeat_expired_before is not None and beat and beat >= heartbeat_expired_before:
            return Transition(TransitionStatus.REJECT, run, reason="the run heartbeated meanwhile")
        if lease_expired_before is not None and lease_outlives(run, lease_expired_before):
            return Transition(TransitionStatus.REJECT, run, reason="its lease has not expired")
        return orchestration.propose_state(run, Crashed(message), now=now, mover=Mover.SERVER)

    outcome = apply_transition(
        flow_run_id, decide, transition_id=None,
        store=store, queue=queue, metrics=metrics, now=now,
    )
    return _response(outcome)


def lease_outlives(run: FlowRun, instant: datetime) -> bool:
    """Whether the run's current lease, as last granted, runs until `instant` or later. A
    stored expiry further from the last renewal than the longest lease is not believed."""
    expires = run.lease_expires_at
    if expires is None:
        return False
    renewed = run.heartbeat_at or run.start_time or run.updated
    if renewed is not None:
        expires = min(expires, shift(renewed, MAX_LEASE))
    return expires >= instant


def apply_server_transition(
    flow_run_id: str,
    decide: Callable[[FlowRun], Transition],
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime,
    transition_id: str | None = None,
) -> Transition:
    """A transition the control plane itself decides (scheduler, monitor, backfill): `decide`
    maps the run as read to a `Transition` (usually through `orchestration` with
    `Mover.SERVER`), and it is written with the same read-decide-compare-and-set loop, history
    entry and queue message as every other transition."""
    return apply_transition(
        flow_run_id, decide, transition_id=transition_id,
        store=store, queue=queue, metrics=metrics, now=now,
    )


def apply_transition(
    flow_run_id: str,
    decide: Callable[[FlowRun], Transition],
    *,
    transition_id: str | None,
    store: RunStore,
    queue: RunQueue | None,
    metrics: Metrics,
    now: datetime,
    current: FlowRun | None = None,
) -> Transition:
    """Read, decide, compare-and-set write; re-read on a lost race: the one write path of every
    flow-run transition. Sends the run's queue message after the write when the transition asks
    for one. `current`: the run as this request already read it, decided on instead of the
    first read (the compare-and-set write is the guard: a run that changed since fails it, and
    the next round reads it again)."""
    lost_race = False
    for _ in range(MAX_WRITE_ATTEMPTS):
        run = current if current is not None else store.get_flow_run(flow_run_id)
        current = None
        if lost_race and _seen(store, run, transition_id):
            return _repeat(run)
        try:
            outcome = decide(run)
        except StaleLease:
            # The first delivery of this very transition may be what moved the lease on.
            if _seen(store, run, transition_id):
                return _repeat(run)
            raise
        if not outcome.accepted and _seen(store, run, transition_id):
            return _repeat(run)
        if not outcome.write:
            return outcome
        to_write = outcome.run
        send = outcome.enqueue and due_for_enqueue(to_write, now)
        if send:
            to_write = mark_enqueued(to_write, now)
        try:
            stored = (store.set_flow_run_state(to_write, transition_id, outcome.passed)
                      if outcome.passed else store.set_flow_run_state(to_write, transition_id))
        except StaleLease:
            raise
        except Conflict:
            lost_race = True
            continue
        if ended_attempt(run, stored):
            # Before the retry's message goes out: its attempt's task runs are not closed.
            close_open_task_runs(stored, store=store, metrics=metrics, now=now)
        if send:
            assert queue is not None, "a transition that enqueues needs the queue port"
            send_run_message(stored, store=store, queue=queue, metrics=metrics, now=now)
        for state in (*outcome.passed, stored.state):
            metrics.count("FlowRunTransitions", dimensions={"state": state.type.value})
        event_log.flow_run_transitioned(run, stored, store=store, now=now, passed=outcome.passed)
        return replace(outcome, run=stored)
    raise Conflict(f"flow run {flow_run_id} kept changing while it was being updated; try again")


def _seen(store: RunStore, run: FlowRun, transition_id: str | None) -> bool:
    return transition_id is not None and store.has_transition(run.id, transition_id)


def _repeat(run: FlowRun) -> Transition:
    return Transition(TransitionStatus.ACCEPT, run, reason="repeated transition; nothing changed")


def _response(outcome: Transition) -> SetStateResponse:
    return SetStateResponse(status=outcome.status, state=outcome.state, reason=outcome.reason)


def record_worker_seen(run: FlowRun, *, store: RunStore, now: datetime) -> None:
    """Mark the run's worker as seen now, unless a worker session beats for it."""
    if run.lease_session is not None:
        return  # a worker with a session beats for itself (worker_leases): no write per claim
    if run.worker and run.pool:
        store.upsert_worker(Worker(name=run.worker, pool=run.pool, last_seen=now, online=True))

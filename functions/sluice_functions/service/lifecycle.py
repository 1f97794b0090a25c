"""Use cases that move a flow run through its states: set_state, claim, heartbeat, cancel,
retry, and the monitor's mark_crashed.

Each one reads the run, asks `orchestration` what it becomes, and writes it with
compare-and-set; a lost race re-reads and decides again, so concurrent writers never both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sluice.exceptions import Conflict, NotFound, StaleLease, Throttled
from sluice.models import (
    ClaimRequest,
    ClaimResponse,
    Crashed,
    FlowRun,
    HeartbeatRequest,
    HeartbeatResponse,
    Retrying,
    Running,
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
from . import concurrency, event_log
from .attempts import claim_leases, close_open_task_runs, ended_attempt, lease_terms, renew
from .limits import check_state
from .pool_pause import refuse_claim_if_pool_paused
from .queueing import due_for_enqueue, is_held, mark_enqueued, send_run_message

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
) -> SetStateResponse:
    """Propose a new state for a run (the run's process or its worker).

    Accepted: the run, its history entry and the transition id are written together; a run that
    entered Scheduled (AwaitingRetry) is enqueued again. Refused: status REJECT (or ABORT when the
    run should stop) with the reason, nothing written. A repeated `transition_id` returns ACCEPT
    with the current state. Raises `NotFound`, `StaleLease` (409), `PayloadTooLarge` (message).
    """
    now = now or utcnow()
    check_state(request.state)
    outcome = _apply(
        flow_run_id,
        lambda run: orchestration.propose_state(
            run, request.state, now=now, lease=request.lease, expect=request.expect
        ),
        transition_id=request.transition_id,
        store=store, queue=queue, metrics=metrics, now=now,
    )
    return _response(outcome)


def claim_flow_run(
    flow_run_id: str,
    request: ClaimRequest,
    *,
    store: RunStore,
    metrics: Metrics,
    queue: RunQueue | None = None,
    now: datetime | None = None,
    leases: LeasePolicy = DEFAULT_LEASES,
) -> ClaimResponse:
    """A worker claims a queued run (Scheduled -> Pending) and gets the attempt's lease.

    Raises `Conflict` when the run cannot be claimed (the worker then deletes the message) and
    `NotFound` for an unknown run. A repeated claim by the same worker for the same attempt
    returns the same lease.

    Concurrency limits (see `concurrency`): a claim beyond the deployment's or the pool's limit
    raises `Throttled` (the worker lets the message become visible again later; the run waits in
    Scheduled; with `request.requeue` and a `queue`, a fresh message is sent for it and the
    refusal says `requeued`); with the deployment's `cancel_new` strategy the run is Cancelled
    and `Conflict` raised. A run held back by the scheduler (`queueing.is_held`) cannot be
    claimed (`Conflict`).
    """
    now = now or utcnow()
    refuse_claim_if_pool_paused(flow_run_id, request, store=store, queue=queue, metrics=metrics,
                                now=now)
    try:
        return _claim(flow_run_id, request, store=store, metrics=metrics, now=now, leases=leases)
    except Throttled as refusal:
        reason = (refusal.details or {}).get("reason")
        if request.requeue and queue is not None and reason == concurrency.CONCURRENCY_LIMIT_REASON:
            concurrency.requeue_waiting(flow_run_id, refusal, store=store, queue=queue,
                                        metrics=metrics, now=now)
        raise


class _AdmittedOnStaleRead(Exception):
    """The run changed between its admission and the claim's write: admit it again."""


#: Admissions redone when the run keeps changing under the claim (then the last try's answer).
MAX_ADMISSIONS = 3


def _claim(flow_run_id: str, request: ClaimRequest, *, store: RunStore, metrics: Metrics,
           now: datetime, leases: LeasePolicy) -> ClaimResponse:
    new_lease = uuid.uuid4().hex
    # Issue 6: holds and concurrency limits are checked before the claim is written and the
    # limits again after it (the second check settles races between simultaneous claims).
    for admission in range(1, MAX_ADMISSIONS + 1):
        before = store.get_flow_run(flow_run_id)
        limits = _admit_claim(before, request.attempt, store=store, metrics=metrics, now=now)
        first_leases = claim_leases(before, store=store, leases=leases)
        # The attempt holds a slot of each limit it is admitted under (the store lists it
        # there, so the count after the claim sees every claim written before it).
        scopes = tuple(limit.scope for limit in limits)

        def decide(run: FlowRun, before: FlowRun = before, scopes: tuple[str, ...] = scopes,
                   last: bool = admission == MAX_ADMISSIONS,
                   first_leases: LeasePolicy = first_leases) -> Transition:
            if run.version != before.version and not last:
                raise _AdmittedOnStaleRead  # e.g. it became claimable after it was admitted
            if _repeats_started_claim(run, request):
                return Transition(TransitionStatus.ACCEPT, run)
            if run.slot_scopes != scopes:
                run = run.model_copy(update={"slot_scopes": scopes})
            claimed = orchestration.claim(run, worker=request.worker, new_lease=new_lease,
                                          now=now, attempt=request.attempt,
                                          claim_id=request.claim_id)
            if not claimed.write:
                return claimed
            # The claimant's session (if any) renews this lease from now on (worker_leases).
            claimed = replace(claimed, run=claimed.run.model_copy(
                update={"lease_expires_at": first_leases.expires_at(now),
                        "lease_session": request.session}))
            if request.start and not scopes:
                return _started_in_the_same_write(claimed, new_lease, now=now)
            return claimed

        try:
            outcome = _apply(flow_run_id, decide, transition_id=None,
                             store=store, queue=None, metrics=metrics, now=now)
            break
        except _AdmittedOnStaleRead:
            continue
    if outcome.write and limits:
        _confirm_claim(before, new_lease, limits, store=store, metrics=metrics, now=now)
    run = outcome.run
    if outcome.write and request.start and run.state.type is StateType.PENDING:
        run = _start_claimed(run, new_lease, store=store, metrics=metrics, now=now)
    if not outcome.write:
        # The claim is repeated (its answer was lost): the holder counts its lease from this
        # request, so the control plane must too.
        held = run.lease
        run = renew(run, store=store, now=now, leases=first_leases)
        if run.lease != held or not holds_live_attempt(run):
            raise Conflict(f"flow run {run.id}: its attempt ended while it was claimed again",
                           details={"flow_run_id": run.id, "state": run.state.type.value})
    _record_worker_seen(run, store=store, now=now)
    if outcome.write:
        metrics.count("FlowRunsClaimed", dimensions={"pool": run.pool or ""})
    assert run.lease is not None
    return ClaimResponse(lease=run.lease, flow_run=run, **lease_terms(first_leases, now),
                         deployment=_deployment_of(run, store) if request.with_deployment
                         else None)


def _started_in_the_same_write(claimed: Transition, lease: str, *, now: datetime) -> Transition:
    """A claim that asks to `start`, under no concurrency limit (nothing can take it back):
    Pending and Running in one write, Pending kept as a history entry of its own (issue 20).
    The same rules and lease check as the process's own Running."""
    started = _start(claimed.run, lease, now=now)
    if not started.write:
        return claimed
    return replace(started, passed=(claimed.run.state,))


def _start_claimed(run: FlowRun, lease: str, *, store: RunStore, metrics: Metrics,
                   now: datetime) -> FlowRun:
    """Running for a claim that asked to `start` (issue 20: the worker's flow process then
    sends no request for it): the same rules, lease check and history entry as the process's
    own Running, written right after the claim (its limits confirmed, so it is not taken back)
    in the same request. A run that moved meanwhile (cancelled) stays as it is: the answer says
    so and the flow process proposes Running itself, as before."""
    try:
        outcome = _apply(run.id, lambda current: _start(current, lease, now=now),
                         transition_id=None, store=store, queue=None, metrics=metrics, now=now)
    except (StaleLease, Conflict):
        return store.get_flow_run(run.id)
    return outcome.run


def _start(run: FlowRun, lease: str, *, now: datetime) -> Transition:
    """The claimed attempt's Running (Retrying from its second attempt on), proposed under its
    lease by the same rules as the flow process's own."""
    running = Retrying() if run.run_count > 1 else Running()
    return orchestration.propose_state(run, running, now=now, lease=lease)


def _repeats_started_claim(run: FlowRun, request: ClaimRequest) -> bool:
    """A repeat (same claim id, worker and attempt) of a claim that started its run: its answer
    was lost, so it gets the same lease. Without a claim id a started run is never re-claimed."""
    return (
        request.start and request.claim_id is not None
        and run.state.type is StateType.RUNNING and run.lease is not None
        and run.claim_id == request.claim_id and run.worker == request.worker
        and (request.attempt is None or run.run_count == request.attempt + 1)
    )


def _deployment_of(run: FlowRun, store: RunStore) -> object | None:
    """The claimed run's deployment for the claim's answer (None: the worker reads it)."""
    if run.deployment_id is None:
        return None
    try:
        return store.get_deployment(run.deployment_id)
    except NotFound:
        return None


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
    _record_worker_seen(run, store=store, now=now)
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
    outcome = _apply(
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
    outcome = _apply(
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

    outcome = _apply(
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
    return _apply(
        flow_run_id, decide, transition_id=transition_id,
        store=store, queue=queue, metrics=metrics, now=now,
    )


def _admit_claim(
    run: FlowRun, attempt: int | None, *, store: RunStore, metrics: Metrics, now: datetime
) -> list[concurrency.SlotLimit]:
    """Refuse a claim that cannot be admitted before anything is written; return the limits
    the claim must be re-checked against once written. Only a claim that would otherwise
    succeed is checked (a stale message of an earlier attempt never cancels a run)."""
    if is_held(run):
        raise Conflict(
            f"flow run {run.id} is held by the scheduler ({run.state.details}); it is not "
            "claimable until it is released",
            details={"flow_run_id": run.id, "state": run.state.type.value},
        )
    fresh_claim = (
        run.state.is_scheduled() and run.lease is None and run.pool is not None
        and (attempt is None or attempt == run.run_count)
    )
    limits = concurrency.limits_for(run, store=store) if fresh_claim else []
    wait = concurrency.first_wait(limits, run, store=store, now=now)
    if wait is None:
        return limits
    metrics.count("ConcurrencyLimited", dimensions={"scope": wait.limit.scope})
    if wait.limit.cancel_new and wait.ahead is None:  # full; a run queued behind others waits
        message = wait.limit.cancellation_message(wait.occupied)
        cancel_flow_run(run.id, store=store, metrics=metrics, now=now, message=message)
        raise Conflict(message, details={"flow_run_id": run.id, "reason": "cancel_new"})
    concurrency.record_waiting_reason(run, wait, store=store)
    raise wait.refusal()


def _confirm_claim(
    before: FlowRun,
    lease: str,
    limits: list[concurrency.SlotLimit],
    *,
    store: RunStore,
    metrics: Metrics,
    now: datetime,
) -> None:
    """Count again with the claimed run active; over a limit, undo the claim and refuse it."""
    over = concurrency.first_full_limit(limits, store=store, run_is_counted=True)
    if over is None:
        return
    slot_limit, occupied = over
    metrics.count("ConcurrencyLimited", dimensions={"scope": slot_limit.scope})
    wait = concurrency.Wait(slot_limit, occupied - 1)  # the others, without this claim
    _apply(
        before.id,
        lambda run: concurrency.undo_claim(run, before=before, lease=lease, now=now,
                                           message=wait.message, waiting_for=slot_limit.scope),
        transition_id=None, store=store, queue=None, metrics=metrics, now=now,
    )
    raise wait.refusal()


def _apply(
    flow_run_id: str,
    decide: Callable[[FlowRun], Transition],
    *,
    transition_id: str | None,
    store: RunStore,
    queue: RunQueue | None,
    metrics: Metrics,
    now: datetime,
) -> Transition:
    """Read, decide, compare-and-set write; re-read on a lost race. Sends the run's queue message
    after the write when the transition asks for one."""
    lost_race = False
    for _ in range(MAX_WRITE_ATTEMPTS):
        run = store.get_flow_run(flow_run_id)
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


def _record_worker_seen(run: FlowRun, *, store: RunStore, now: datetime) -> None:
    if run.lease_session is not None:
        return  # a worker with a session beats for itself (worker_leases): no write per claim
    if run.worker and run.pool:
        store.upsert_worker(Worker(name=run.worker, pool=run.pool, last_seen=now, online=True))

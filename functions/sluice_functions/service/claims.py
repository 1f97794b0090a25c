"""A worker's claim of a queued run (Scheduled -> Pending, or Running with `start`): the
admission rules (paused pool, scheduler holds, concurrency limits), the lease, and the write,
through `lifecycle.apply_transition` like every other transition.

Reads (issue 20): the run is read once and that read is admitted, decided on and written
compare-and-set (a lost race or a refusal reads it again); the pool and the deployment are read
once per claim (`request_reads`) for the pause, the limits, the first lease's terms, the event
and the answer.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from sluice.exceptions import Conflict, NotFound, StaleLease, Throttled
from sluice.models import (
    ClaimRequest,
    ClaimResponse,
    FlowRun,
    Retrying,
    Running,
    StateType,
    TransitionStatus,
    utcnow,
)

from .. import orchestration
from ..orchestration import DEFAULT_LEASES, LeasePolicy, Transition, holds_live_attempt
from ..ports import Metrics, RunQueue, RunStore
from . import concurrency
from .attempts import claim_leases, lease_terms, renew
from .lifecycle import apply_transition, cancel_flow_run, record_worker_seen
from .pool_pause import refuse_claim_if_pool_paused
from .queueing import is_held
from .request_reads import request_reads


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
    # One read of the pool and the deployment serves every rule below (issue 20: a claim read
    # its pool 3 times and its deployment 3 times); the run read here is the one admitted,
    # decided on and written compare-and-set (an unknown run: 404, as the claim answers).
    store = request_reads(store)
    run = store.get_flow_run(flow_run_id)
    refuse_claim_if_pool_paused(run, request, store=store, queue=queue, metrics=metrics,
                                now=now)
    try:
        return _claim(flow_run_id, request, store=store, metrics=metrics, now=now, leases=leases,
                      read=run)
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
           now: datetime, leases: LeasePolicy, read: FlowRun | None = None) -> ClaimResponse:
    new_lease = uuid.uuid4().hex
    # Issue 6: holds and concurrency limits are checked before the claim is written and the
    # limits again after it (the second check settles races between simultaneous claims).
    for admission in range(1, MAX_ADMISSIONS + 1):
        # The first admission takes the run the request read (a claim it admits is written
        # compare-and-set on that version); a readmission reads it again.
        reused = read is not None
        before = read if read is not None else store.get_flow_run(flow_run_id)
        read = None
        limits = _admit_claim(before, request.attempt, store=store, metrics=metrics, now=now)
        first_leases = claim_leases(before, store=store, leases=leases)
        # The attempt holds a slot of each limit it is admitted under (the store lists it
        # there, so the count after the claim sees every claim written before it).
        scopes = tuple(limit.scope for limit in limits)

        def decide(run: FlowRun, before: FlowRun = before, scopes: tuple[str, ...] = scopes,
                   last: bool = admission == MAX_ADMISSIONS, reused: bool = reused,
                   first_leases: LeasePolicy = first_leases) -> Transition:
            if run.version != before.version and not last:
                raise _AdmittedOnStaleRead  # e.g. it became claimable after it was admitted
            if _repeats_started_claim(run, request):
                return Transition(TransitionStatus.ACCEPT, run)
            if run.slot_scopes != scopes:
                run = run.model_copy(update={"slot_scopes": scopes})
            try:
                claimed = orchestration.claim(run, worker=request.worker, new_lease=new_lease,
                                              now=now, attempt=request.attempt,
                                              claim_id=request.claim_id)
            except Conflict:
                # Refused on the request's first read: decided again on a fresh one (the
                # worker deletes its message on this answer), as before the read was shared.
                if reused and not last:
                    raise _AdmittedOnStaleRead from None
                raise
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
            outcome = apply_transition(flow_run_id, decide, transition_id=None, store=store,
                                       queue=None, metrics=metrics, now=now, current=before)
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
    record_worker_seen(run, store=store, now=now)
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
        outcome = apply_transition(run.id, lambda current: _start(current, lease, now=now),
                                   transition_id=None, store=store, queue=None,
                                   metrics=metrics, now=now, current=run)
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
    apply_transition(
        before.id,
        lambda run: concurrency.undo_claim(run, before=before, lease=lease, now=now,
                                           message=wait.message, waiting_for=slot_limit.scope),
        transition_id=None, store=store, queue=None, metrics=metrics, now=now,
    )
    raise wait.refusal()

"""Use cases that create and read flow runs, and the scheduler's enqueueing of due runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sluice.exceptions import Conflict, NotFound, ValidationError
from sluice.names import run_name
from sluice.models import (
    new_id,
    MAX_PAGE_LIMIT,
    Deployment,
    FlowRun,
    FlowRunCreate,
    Page,
    Scheduled,
    State,
    StateType,
    utcnow,
)

from ..isolation import CountsFailures, isolated
from ..orchestration import DEFAULT_LEASES, LeasePolicy
from ..ports import FlowRunFilter, Metrics, RunQueue, RunStore
from ..timemath import shift
from . import event_log
from .concurrency import cancel_if_over_limit_at_creation
from .limits import check_page_limit, check_parameters, check_state, check_tags
from .parameter_schema import validate_parameters
from .queueing import (
    ENQUEUE_HORIZON,
    due_for_enqueue,
    is_held,
    mark_enqueued,
    send_run_message,
)
from .request_reads import request_reads

#: A run is created Scheduled (a worker claims it) or Pending (its creator runs it: a flow
#: started as a plain script, a subflow) holding a lease; never already Running (it would have
#: skipped its lease) nor in a terminal or Cancelling state.
CREATABLE_STATE_TYPES = frozenset({StateType.SCHEDULED, StateType.PENDING})
#: A Scheduled run whose message went out this long ago and is still unclaimed gets another
#: message: the first may have been lost (a failed send, or it went to the DLQ). Duplicates are
#: harmless: a claim names the attempt, and the second claim of an attempt gets 409.
RESEND_UNCLAIMED_AFTER = timedelta(hours=1)
#: Most runs one scheduler tick enqueues; the rest wait for the next tick (Lambda time limit).
MAX_ENQUEUES_PER_TICK = 1000


def create_flow_run(
    request: FlowRunCreate,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    created_by: str | None = None,
    now: datetime | None = None,
    leases: LeasePolicy = DEFAULT_LEASES,
    worker_pool: str | None = None,
) -> FlowRun:
    """Create a run (Scheduled unless the request says otherwise) and enqueue it when it is due
    within the SQS delay limit.

    With `deployment_id`, the run goes to the deployment's pool, its parameters are merged over
    the deployment's defaults and checked against its `parameter_schema`, and retries default to
    the deployment's. Idempotent: a second create with the same `idempotency_key` (or the same
    client `id`) returns the first run and sends nothing. Raises `ValidationError` (422),
    `PayloadTooLarge` (413) before writing anything, `Conflict` when the client `id` belongs to a
    run of another flow.
    """
    run, _ = create_flow_run_once(
        request, store=store, queue=queue, metrics=metrics, created_by=created_by, now=now,
        leases=leases, worker_pool=worker_pool,
    )
    return run


def create_flow_run_once(
    request: FlowRunCreate,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    created_by: str | None = None,
    now: datetime | None = None,
    leases: LeasePolicy = DEFAULT_LEASES,
    worker_pool: str | None = None,
) -> tuple[FlowRun, bool]:
    """`create_flow_run`, also saying whether this call created the run (True) or found it
    already there under the same id or idempotency key (False). The scheduler and backfill use
    it with deterministic ids: of several concurrent creates of one slot exactly one gets True.

    A run of a deployment with `concurrency_limit` and collision strategy `cancel_new` that is
    due now while the deployment's slots are full is created Cancelled (nothing is enqueued).
    """
    now = now or utcnow()
    # The deployment is read once for the run's defaults, its limit and its event's name.
    store = request_reads(store)
    if request.idempotency_key:
        existing = store.get_flow_run_by_idempotency_key(request.idempotency_key)
        if existing is not None:
            return public_view(existing), False
    run = _new_run(request, store=store, created_by=created_by, now=now, leases=leases)
    if worker_pool is not None:  # a subflow a flow process of that pool creates
        run = run.model_copy(update={"worker_pool": worker_pool})
    # Concurrency (issue 6): `cancel_new` refuses a run that would start over the limit at once.
    run = cancel_if_over_limit_at_creation(run, store=store, now=now)
    send = run.pool is not None and run.state.type is StateType.SCHEDULED and due_for_enqueue(
        run, now
    )
    if send:
        run = mark_enqueued(run, now)
    try:
        stored = store.create_flow_run(run)
    except Conflict:
        return public_view(_existing_twin(run, store=store)), False
    metrics.count("FlowRunsCreated", dimensions={"pool": stored.pool or ""})
    if send:
        send_run_message(stored, store=store, queue=queue, metrics=metrics, now=now)
    # The run's first state (Scheduled, or Cancelled by `cancel_new`, ...) is an event too.
    event_log.flow_run_transitioned(None, stored, store=store, now=now)
    return public_view(stored), True


def get_flow_run(flow_run_id: str, *, store: RunStore) -> FlowRun:
    """The run as users see it (without its lease). Raises `NotFound`."""
    return public_view(store.get_flow_run(flow_run_id))


def list_flow_runs(
    flt: FlowRunFilter,
    *,
    store: RunStore,
    limit: int = MAX_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[FlowRun]:
    """Runs matching the filter, newest scheduled first, one page at a time."""
    check_page_limit(limit)
    if flt.scheduled_after and flt.scheduled_before and flt.scheduled_after > flt.scheduled_before:
        raise ValidationError(
            "the time range ends before it starts",
            details=[{"loc": ["scheduled_after"], "msg": "is after scheduled_before"}],
        )
    page = store.list_flow_runs(flt, limit=limit, cursor=cursor)
    return Page[FlowRun](items=[public_view(r) for r in page.items], next_cursor=page.next_cursor)


def list_state_history(flow_run_id: str, *, store: RunStore) -> list[State]:
    """Every state of the run, oldest first. Raises `NotFound` for an unknown run."""
    store.get_flow_run(flow_run_id)
    return store.list_state_history(flow_run_id)


def enqueue_due_runs(
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime | None = None,
    resend_unclaimed_after: timedelta = RESEND_UNCLAIMED_AFTER,
    failures: CountsFailures | None = None,
    tick: str = "scheduler",
) -> int:
    """The scheduler tick: send the messages of queued runs that became due within the SQS delay
    limit, and resend those still unclaimed `resend_unclaimed_after` after their message (the
    monitor's repair of lost messages passes a shorter window). Runs held back by the scheduler
    (`queueing.is_held`) are left alone: the scheduler releases them.

    Concurrent ticks do not double-send: the run is marked enqueued with compare-and-set before
    its message goes out. Returns how many messages were sent. A run whose handling raises is
    logged, counted (`TickRecordErrors` of `tick`, and `failures.failed`) and skipped.
    """
    now = now or utcnow()
    sent = 0
    cursor: str | None = None
    while sent < MAX_ENQUEUES_PER_TICK:
        page = store.list_flow_runs_by_state(
            StateType.SCHEDULED, scheduled_before=shift(now, ENQUEUE_HORIZON),
            limit=MAX_PAGE_LIMIT, cursor=cursor,
        )
        for run in page.items:
            with isolated(tick, f"flow run {run.id}", metrics=metrics, result=failures):
                sent += _enqueue_if_due(run, store=store, queue=queue, metrics=metrics, now=now,
                                        resend_unclaimed_after=resend_unclaimed_after)
        cursor = page.next_cursor
        if cursor is None:
            break
    return sent


def _enqueue_if_due(run: FlowRun, *, store: RunStore, queue: RunQueue, metrics: Metrics,
                    now: datetime, resend_unclaimed_after: timedelta) -> int:
    """`enqueue_due_runs` for one run: 1 if its message was sent."""
    if run.pool is None or run.lease is not None:
        return 0  # not queued, or its process waits for an in-process retry
    if is_held(run):
        return 0  # the scheduler releases it (pre-created slot, backfill beyond max)
    if run.enqueued_at is not None and run.enqueued_at > shift(now, -resend_unclaimed_after):
        return 0
    try:
        marked = store.update_flow_run(mark_enqueued(run, now))
    except (Conflict, NotFound):
        return 0  # claimed, cancelled or enqueued by someone else meanwhile
    return int(send_run_message(marked, store=store, queue=queue, metrics=metrics, now=now))


def public_view(run: FlowRun) -> FlowRun:
    """The run without its lease: only the claim answer shows the lease, to its claimant."""
    if run.lease or run.claim_id or run.ended_lease or run.lease_session:
        return run.model_copy(update={"lease": None, "claim_id": None, "ended_lease": None,
                                      "lease_session": None})
    return run


def _new_run(
    request: FlowRunCreate, *, store: RunStore, created_by: str | None, now: datetime,
    leases: LeasePolicy,
) -> FlowRun:
    """Validate the request and build the run to insert (nothing is written here)."""
    deployment = _deployment_of(request, store=store)
    parameters: dict[str, Any] = dict(request.parameters)
    tags = list(request.tags)
    retries, retry_delay = request.retries, request.retry_delay_seconds
    if deployment is not None:
        parameters = {**deployment.parameters, **request.parameters}
        tags = list(dict.fromkeys([*deployment.tags, *request.tags]))
        if "retries" not in request.model_fields_set:
            retries = deployment.retries
        if "retry_delay_seconds" not in request.model_fields_set:
            retry_delay = deployment.retry_delay_seconds
    check_parameters(parameters)
    check_tags(tags)
    if deployment is not None:
        validate_parameters(parameters, deployment.parameter_schema)
    state = _initial_state(request, now)
    scheduled_at = state.scheduled_time or request.scheduled_at or now
    started = state.type is not StateType.SCHEDULED
    _check_creator_lease(request, started=started)
    return FlowRun(
        id=request.id or new_id(),
        flow_name=deployment.flow_name if deployment else request.flow_name,
        name=request.name or run_name(),
        deployment_id=request.deployment_id,
        pool=deployment.pool if deployment else None,
        state=state,
        parameters=parameters,
        tags=tags,
        scheduled_at=scheduled_at,
        run_count=1 if started else 0,
        # The creator holds the attempt it runs: renewed by its heartbeats from now on.
        lease=request.lease if started else None,
        heartbeat_at=now if started else None,
        lease_expires_at=leases.expires_at(now) if started else None,
        retries=retries,
        retry_delay_seconds=retry_delay,
        parent_flow_run_id=request.parent_flow_run_id,
        parent_task_run_id=request.parent_task_run_id,
        idempotency_key=request.idempotency_key,
        created_by=created_by,
        created=now,
        updated=now,
    )


def _deployment_of(request: FlowRunCreate, *, store: RunStore) -> Deployment | None:
    if request.deployment_id is None:
        return None
    try:
        deployment = store.get_deployment(request.deployment_id)
    except NotFound:
        raise ValidationError(
            f"deployment_id {request.deployment_id!r} names no deployment",
            details=[{"loc": ["deployment_id"], "msg": "no such deployment"}],
        ) from None
    if deployment.flow_name != request.flow_name:
        raise ValidationError(
            f"deployment {request.deployment_id!r} runs flow {deployment.flow_name!r}, "
            f"not {request.flow_name!r}",
            details=[{"loc": ["flow_name"], "msg": "does not match the deployment's flow"}],
        )
    return deployment


def _check_creator_lease(request: FlowRunCreate, *, started: bool) -> None:
    if started and request.deployment_id is not None:
        raise ValidationError(
            "a run of a deployment is created SCHEDULED: a worker of its pool claims it",
            details=[{"loc": ["state", "type"], "msg": "must be SCHEDULED with deployment_id"}],
        )
    if started and request.lease is None:
        raise ValidationError(
            "a run created PENDING is run by its creator, who must hold it: send a `lease` (a "
            "random secret of 16+ characters) and renew it with heartbeats",
            details=[{"loc": ["lease"], "msg": "required when state is PENDING"}],
        )
    if not started and request.lease is not None:
        raise ValidationError(
            "only a run created PENDING has a lease; a SCHEDULED run gets one when claimed",
            details=[{"loc": ["lease"], "msg": "only with state PENDING"}],
        )


def _initial_state(request: FlowRunCreate, now: datetime) -> State:
    if request.state is None:
        return Scheduled(scheduled_time=request.scheduled_at or now)
    check_state(request.state)
    if request.state.type not in CREATABLE_STATE_TYPES:
        raise ValidationError(
            f"a run cannot be created {request.state.type.value}",
            details=[{"loc": ["state", "type"], "msg": "SCHEDULED or PENDING (with a lease); "
                      "a started run moves to RUNNING with its lease"}],
        )
    if request.state.type is StateType.SCHEDULED and request.state.scheduled_time is None:
        return request.state.model_copy(update={"scheduled_time": request.scheduled_at or now})
    return request.state


def _existing_twin(run: FlowRun, *, store: RunStore) -> FlowRun:
    """The run an idempotent create collided with (same idempotency key or same id)."""
    existing = None
    if run.idempotency_key:
        existing = store.get_flow_run_by_idempotency_key(run.idempotency_key)
    if existing is None:
        try:
            existing = store.get_flow_run(run.id)
        except NotFound:
            raise Conflict(f"flow run {run.id} collided with a run that vanished") from None
    if existing.flow_name != run.flow_name:
        raise Conflict(
            f"flow run id {run.id!r} already belongs to flow {existing.flow_name!r}",
            details={"flow_run_id": run.id},
        )
    return existing

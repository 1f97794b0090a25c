"""Use cases for work pools: each pool is a queue (+ DLQ) that its workers long-poll."""

from __future__ import annotations

from datetime import datetime, timedelta

from sluice.exceptions import Conflict, NotFound, SluiceError
from sluice.models import MAX_PAGE_LIMIT, Pool, PoolCreate, PoolUpdate, StateType, utcnow

from ..ports import ACTIVE_STATE_TYPES, FlowRunFilter, Metrics, RunQueue, RunStore
from . import event_log
from .event_builders import pool_event
from .lifecycle import cancel_flow_run

#: How often a worker holding no run beats its presence (the per-worker heartbeat's answer tells
#: it: `WorkerLeaseAnswer.idle_beat_seconds`). With its empty long polls, these beats are an idle
#: worker's whole cost (one API request, one Lambda invocation, one DynamoDB write each): every
#: 3 minutes keeps both under $0.10 a month (docs/cost.md).
WORKER_IDLE_BEAT = timedelta(minutes=3)
#: A worker seen (claim or heartbeat) within this window counts as online: two idle beats and a
#: margin, so one missed beat does not show it offline (nor send `sluice.worker.offline`); a
#: busy worker beats every few seconds.
WORKER_ONLINE_WITHIN = 2 * WORKER_IDLE_BEAT + timedelta(minutes=1)


def create_pool(
    request: PoolCreate, *, store: RunStore, queue: RunQueue, now: datetime | None = None
) -> Pool:
    """Create a pool or update its settings; idempotent. The queue and DLQ are created first,
    so a stored pool always has its queue."""
    now = now or utcnow()
    existed = _exists(request.name, store=store)
    pool_type = _kept_type(request, store=store)
    urls = queue.create_pool_queue(request.name)
    pool = Pool(
        name=request.name,
        type=pool_type,
        concurrency_limit=request.concurrency_limit,
        description=request.description,
        queue_url=urls.queue_url,
        dlq_url=urls.dlq_url,
        created=now,
        # Creating again changes settings, never whether the pool is paused.
        paused=_is_paused(request.name, store=store),
    )
    stored = store.upsert_pool(pool)
    if not existed:
        event_log.record_for_store([pool_event("created", stored.name, now=now)], store=store,
                                   now=now)
    return stored


def _kept_type(request: PoolCreate, *, store: RunStore) -> str:
    """The kind the pool gets: the one asked for, or the stored one when the request names none.
    A pool in use (a deployment names it, or it has runs) keeps its kind: its runs, its
    infrastructure and its deployments' limits depend on it, so another one is refused with the
    fix. An unused pool may still get its kind: one adopted from a queue the AWS stack created
    (`get_pool`) was recorded as a worker pool before anyone said what it is."""
    try:
        stored = store.get_pool(request.name).type
    except NotFound:
        return request.type
    except SluiceError:  # an unreadable record: creating replaces it, as it always did
        return request.type
    if "type" not in request.model_fields_set or request.type == stored:
        return stored
    if _deployments_of(request.name, store=store) or \
            store.count_flow_runs(FlowRunFilter(pool=request.name)):
        raise Conflict(
            f"pool {request.name} is a {stored} pool in use (deployments or runs) and cannot "
            f"become a {request.type} pool: "
            f"delete it and create it again (`sluice pool delete {request.name}`, then "
            f"`sluice pool create {request.name} --type {request.type}`), or create a new pool",
            details={"pool": request.name, "type": stored, "requested_type": request.type})
    return request.type


def _exists(name: str, *, store: RunStore) -> bool:
    try:
        store.get_pool(name)
    except NotFound:
        return False
    except SluiceError:  # an unreadable record is still a pool
        pass
    return True


def _is_paused(name: str, *, store: RunStore) -> bool:
    try:
        return store.get_pool(name).paused
    except NotFound:
        return False
    except SluiceError:  # an unreadable record: creating replaces it, as it always did
        return False


def ensure_pool(
    name: str, *, store: RunStore, queue: RunQueue, now: datetime | None = None
) -> Pool:
    """The pool named `name`, created with default settings if it does not exist yet."""
    try:
        return store.get_pool(name)
    except NotFound:
        return create_pool(_declared(name, queue), store=store, queue=queue, now=now)


def list_pools(*, store: RunStore) -> list[Pool]:
    """Every pool's settings (no live figures: those cost a queue call per pool)."""
    return store.list_pools()


def get_pool(
    name: str, *, store: RunStore, queue: RunQueue, now: datetime | None = None
) -> Pool:
    """A pool with its live figures: queue and DLQ depth, workers (online or not), and how many
    runs hold a slot. Raises `NotFound`.

    A pool whose queue exists without a record (in AWS the stack creates the default pool's
    queues; the record used to appear with the first deployment) is adopted: its record is
    written now, so a worker started on a fresh stack serves it instead of failing."""
    now = now or utcnow()
    try:
        pool = store.get_pool(name)
    except NotFound:
        pool = _adopt(name, store=store, queue=queue, now=now)
    try:
        depth = queue.depth(name)
        queue_depth, dlq_depth = depth.visible + depth.delayed + depth.in_flight, depth.dead_letter
    except NotFound:
        queue_depth = dlq_depth = None  # the queue was removed behind our back; say so
    workers = [
        worker.model_copy(
            update={"online": worker.last_seen is not None
                    and worker.last_seen >= now - WORKER_ONLINE_WITHIN}
        )
        for worker in store.list_workers(name)
    ]
    running = store.count_flow_runs(FlowRunFilter(pool=name, state_types=ACTIVE_STATE_TYPES))
    return pool.model_copy(
        update={
            "queue_depth": queue_depth,
            "dlq_depth": dlq_depth,
            "workers": workers,
            "running": running,
        }
    )


def _adopt(name: str, *, store: RunStore, queue: RunQueue, now: datetime) -> Pool:
    try:
        queue.depth(name)
    except NotFound:
        raise NotFound(
            f"pool {name!r} does not exist; create it with `sluice pool create {name}` or deploy "
            f"a flow to it (`sluice deploy ... --pool {name}`)", details={"pool": name}) from None
    return create_pool(_declared(name, queue), store=store, queue=queue, now=now)


def _declared(name: str, queue: RunQueue) -> PoolCreate:
    """A new pool's settings: its kind as its queue declares it (a `LambdaPool` or
    `FargatePool` of the stack), else a worker pool."""
    declared = queue.declared_pool_type(name)
    return PoolCreate(name=name, type=declared) if declared else PoolCreate(name=name)


def update_pool(
    name: str, update: PoolUpdate, *, store: RunStore, queue: RunQueue,
    now: datetime | None = None,
) -> Pool:
    """Change a pool's settings (today: `paused`) and return it with its live figures.

    A paused pool's claims are refused (`pool_pause`): its runs wait in Scheduled, and the
    ones already claimed go on. Resuming lets the waiting runs be claimed again within
    `pool_pause.PAUSED_RETRY_AFTER_SECONDS`. Raises `NotFound` for an unknown pool."""
    pool = _existing(name, store=store)
    if update.paused is not None and update.paused != pool.paused:
        store.upsert_pool(pool.model_copy(update={"paused": update.paused}))
        moment = now or utcnow()
        event_log.record_for_store(
            [pool_event("paused" if update.paused else "resumed", name, now=moment)],
            store=store, now=moment)
    return get_pool(name, store=store, queue=queue, now=now)


def delete_pool(
    name: str, *, store: RunStore, queue: RunQueue, metrics: Metrics, force: bool = False,
    now: datetime | None = None,
) -> None:
    """Delete a pool: its record, its queue and its dead-letter queue (with their messages).

    Refused (`Conflict`) while deployments use the pool or runs of it are not finished. With
    `force`, refused only while runs of it are active (Pending, Running, Paused, Cancelling);
    its Scheduled runs are cancelled, and deployments that still name it keep it: their new
    runs wait until a pool of that name exists again (deploy them to another pool). The queues
    go before the runs are cancelled and the record last, so a failure half-way leaves a pool
    that a second `delete` finishes."""
    now = now or utcnow()
    _existing(name, store=store)
    active = store.count_flow_runs(FlowRunFilter(pool=name, state_types=ACTIVE_STATE_TYPES))
    if active:
        raise Conflict(
            f"pool {name} has {_runs(active)} active (pending, running or cancelling): wait for "
            "them to finish or cancel them (sluice flow-run ls --state running, then sluice "
            "flow-run cancel ID), then delete the pool",
            details={"pool": name, "active_runs": active})
    if not force:
        deployments = _deployments_of(name, store=store)
        scheduled = store.count_flow_runs(
            FlowRunFilter(pool=name, state_types=frozenset({StateType.SCHEDULED})))
        if deployments or scheduled:
            using = [f"{len(deployments)} deployment(s) ({', '.join(deployments[:3])}"
                     f"{', ...' if len(deployments) > 3 else ''})"] if deployments else []
            using += [f"{_runs(scheduled)} scheduled"] if scheduled else []
            raise Conflict(
                f"pool {name} is in use: {' and '.join(using)}; deploy those deployments to "
                "another pool or delete them, or pass --force to cancel its scheduled runs and "
                "delete the pool anyway",
                details={"pool": name, "deployments": deployments, "scheduled_runs": scheduled})
    # The queues first: a pool whose queues this store may not delete (the AWS stack's own)
    # is refused before any run is cancelled.
    queue.delete_pool_queue(name)
    if force:
        _cancel_scheduled_runs(name, store=store, metrics=metrics, now=now)
    store.delete_pool(name)
    event_log.record_for_store([pool_event("deleted", name, now=now)], store=store, now=now)


def _existing(name: str, *, store: RunStore) -> Pool:
    try:
        return store.get_pool(name)
    except NotFound:
        raise NotFound(f"pool {name!r} does not exist; `sluice pool ls` lists the pools",
                       details={"pool": name}) from None


def _runs(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"


def _deployments_of(pool: str, *, store: RunStore) -> list[str]:
    """"flow/name" of every deployment that runs on `pool`."""
    names: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list_deployments(limit=MAX_PAGE_LIMIT, cursor=cursor)
        names += [f"{d.flow_name}/{d.name}" for d in page.items if d.pool == pool]
        cursor = page.next_cursor
        if cursor is None:
            return names


def _cancel_scheduled_runs(pool: str, *, store: RunStore, metrics: Metrics,
                           now: datetime) -> None:
    scheduled = FlowRunFilter(pool=pool, state_types=frozenset({StateType.SCHEDULED}))
    cursor: str | None = None
    while True:
        # Cancelling keeps a run's place in the listing's order, so the cursor stays valid.
        page = store.list_flow_runs(scheduled, limit=MAX_PAGE_LIMIT, cursor=cursor)
        for run in page.items:
            cancel_flow_run(run.id, store=store, metrics=metrics, now=now,
                            message=f"cancelled: pool {pool} was deleted")
        cursor = page.next_cursor
        if cursor is None:
            return

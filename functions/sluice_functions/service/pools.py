"""Use cases for work pools: each pool is a queue (+ DLQ) that its workers long-poll."""

from __future__ import annotations

from datetime import datetime, timedelta

from sluice.exceptions import NotFound
from sluice.models import Pool, PoolCreate, utcnow

from ..ports import ACTIVE_STATE_TYPES, FlowRunFilter, RunQueue, RunStore

#: A worker seen (claim or heartbeat) within this window counts as online. Workers heartbeat
#: their runs every few tens of seconds, so three missed beats mark an idle-looking worker
#: offline only when it really stopped talking.
WORKER_ONLINE_WITHIN = timedelta(seconds=90)


def create_pool(
    request: PoolCreate, *, store: RunStore, queue: RunQueue, now: datetime | None = None
) -> Pool:
    """Create a pool or update its settings; idempotent. The queue and DLQ are created first,
    so a stored pool always has its queue."""
    now = now or utcnow()
    urls = queue.create_pool_queue(request.name)
    pool = Pool(
        name=request.name,
        concurrency_limit=request.concurrency_limit,
        description=request.description,
        queue_url=urls.queue_url,
        dlq_url=urls.dlq_url,
        created=now,
    )
    return store.upsert_pool(pool)


def ensure_pool(
    name: str, *, store: RunStore, queue: RunQueue, now: datetime | None = None
) -> Pool:
    """The pool named `name`, created with default settings if it does not exist yet."""
    try:
        return store.get_pool(name)
    except NotFound:
        return create_pool(PoolCreate(name=name), store=store, queue=queue, now=now)


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
    return create_pool(PoolCreate(name=name), store=store, queue=queue, now=now)

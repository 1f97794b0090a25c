"""Concurrency limits: a deployment's `concurrency_limit` (with its collision strategy) and a
pool's `concurrency_limit`, enforced when a worker claims a run and when a run is created.

A slot is held by every run of the deployment (or pool) in an active state type (Pending,
Running, Paused, Cancelling), counted with `RunStore.count_flow_runs`; every terminal state
releases it, Crashed from the monitor included, so a dead worker never holds a slot for ever.

The store has no counter that a claim could increment atomically with the run, so admission
is optimistic and checked twice:

1. before the claim: slots visibly full -> refuse without writing (the common case);
2. after the claim wrote the run as Pending: count again, the run included; over the limit ->
   undo the claim (back to the run's previous Scheduled state, same attempt) and refuse.

Step 2 keeps the limit under races: of any `limit + 1` claims that overlap, the one that counts
last sees them all and backs off, so no more than `limit` claims ever return a lease. Runs that
back off together may all back off (they retry a few seconds later); the limit is never
exceeded to avoid that. A refused claim answers `Throttled` (429) and the run waits in
Scheduled. A worker's claim asks for `requeue`: the control plane then sends the run a fresh
message, due a few seconds later, and the worker deletes the one it holds. (Letting the same
message come back would count a delivery at every refusal, and after the queue's
`maxReceiveCount` the waiting run would land in the dead-letter queue.) With collision
strategy `cancel_new` a run that finds the deployment's slots already full is Cancelled
instead (a claim that lost a race in step 2 is only refused, never cancelled: which of the
racing runs is "new" is not known).

A limit counts the active runs admitted under it (`FlowRun.slot_scopes`, set by the claim;
runs claimed before a limit was set are not counted). Both counts must see every committed claim
(`FlowRunFilter.slot_holders`; `RunStore.count_flow_runs` says so): SQLite counts rows; DynamoDB
counts one item per slot holder, written in the same transaction as the run's state, in a table
partition read with strong consistency (its run indexes are eventually consistent and could miss
a claim made a few milliseconds earlier).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sluice.exceptions import NotFound, SluiceError, Throttled
from sluice.models import Cancelled, CollisionStrategy, FlowRun, StateType, TransitionStatus

from ..orchestration import Transition
from ..ports import FlowRunFilter, Metrics, RunQueue, RunStore
from ..timemath import shift
from .queueing import is_held, mark_enqueued, run_message

logger = logging.getLogger(__name__)

#: After a refused claim the worker sees the message again after this long (`Retry-After`).
CONCURRENCY_RETRY_AFTER_SECONDS = 5.0
#: `details.reason` of a refused claim, so a worker can tell it from other throttling.
CONCURRENCY_LIMIT_REASON = "concurrency_limit"
#: A waiting run's `enqueued_at` is refreshed when a requeue finds it older than this, so the
#: lost-message repair (20 minutes at the soonest) never takes the waiting run's live message
#: for a lost one and adds another: one write per waiting run every few minutes.
REQUEUE_REFRESH_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class SlotLimit:
    """One limit a run is subject to: its deployment's or its pool's."""

    #: "deployment" or "pool".
    scope: str
    #: What users call it: "flow/deployment" or the pool name.
    name: str
    limit: int
    #: The runs that hold one of its slots.
    holders: FlowRunFilter
    #: The deployment's collision strategy is `cancel_new` (pools always make runs wait).
    cancel_new: bool = False

    def occupied(self, store: RunStore) -> int:
        return store.count_flow_runs(self.holders)

    def refusal(self, occupied: int) -> Throttled:
        return Throttled(
            f"{self.scope} {self.name} is at its concurrency limit ({occupied} of {self.limit} "
            "slots taken); the run waits in Scheduled and starts when a slot frees",
            retry_after=CONCURRENCY_RETRY_AFTER_SECONDS,
            details={"reason": CONCURRENCY_LIMIT_REASON, "scope": self.scope,
                     "name": self.name, "limit": self.limit, "occupied": occupied},
        )

    def cancellation_message(self, occupied: int) -> str:
        return (
            f"cancelled: {self.scope} {self.name} already runs {occupied} of its {self.limit} "
            "allowed runs (collision strategy cancel_new)"
        )


def limits_for(run: FlowRun, *, store: RunStore) -> list[SlotLimit]:
    """The limits that apply to `run` (none when neither its deployment nor its pool has one)."""
    limits: list[SlotLimit] = []
    if run.deployment_id is not None:
        try:
            deployment = store.get_deployment(run.deployment_id)
        except NotFound:
            deployment = None  # deleted: its runs still run, without its limit
        if deployment is not None and deployment.concurrency_limit is not None:
            limits.append(SlotLimit(
                scope="deployment",
                name=f"{deployment.flow_name}/{deployment.name}",
                limit=deployment.concurrency_limit,
                holders=FlowRunFilter.slot_holders(deployment_id=deployment.id),
                cancel_new=deployment.collision_strategy is CollisionStrategy.CANCEL_NEW,
            ))
    if run.pool is not None:
        try:
            pool = store.get_pool(run.pool)
        except NotFound:
            pool = None
        if pool is not None and pool.concurrency_limit is not None:
            limits.append(SlotLimit(
                scope="pool",
                name=pool.name,
                limit=pool.concurrency_limit,
                holders=FlowRunFilter.slot_holders(pool=pool.name),
            ))
    return limits


def first_full_limit(
    limits: list[SlotLimit], *, store: RunStore, run_is_counted: bool
) -> tuple[SlotLimit, int] | None:
    """The first limit whose slots are all taken, with how many are occupied; None if every
    limit has room. Before the claim (`run_is_counted=False`) a limit is full at `occupied >=
    limit`; after the claim wrote the run as active it is over at `occupied > limit`."""
    for slot_limit in limits:
        occupied = slot_limit.occupied(store)
        allowed = slot_limit.limit + (1 if run_is_counted else 0)
        if occupied >= allowed:
            return slot_limit, occupied
    return None


def undo_claim(
    run: FlowRun, *, before: FlowRun, lease: str, now: datetime, message: str
) -> Transition:
    """The claim this call made, taken back: the run as it was before the claim (its Scheduled,
    Late or AwaitingRetry state, attempt count, worker and enqueued time), so the queue message
    the worker keeps can claim it again. Nothing is written if the run moved on meanwhile (a
    user cancelled it: its slot is free anyway)."""
    if run.state.type is not StateType.PENDING or run.lease != lease:
        return Transition(TransitionStatus.REJECT, run, reason="the claim was already superseded")
    waiting = before.state.model_copy(update={"timestamp": now, "message": message})
    restored = run.model_copy(update={
        "state": waiting,
        "lease": before.lease,
        "worker": before.worker,
        "claim_id": before.claim_id,
        "heartbeat_at": before.heartbeat_at,
        "run_count": before.run_count,
        "enqueued_at": before.enqueued_at,
        "scheduled_at": before.scheduled_at,
        "updated": now,
    })
    return Transition(TransitionStatus.ACCEPT, restored, write=True)


def cancel_if_over_limit_at_creation(run: FlowRun, *, store: RunStore, now: datetime) -> FlowRun:
    """`run` as it must be created: Cancelled at once when it is due now, its deployment's
    strategy is `cancel_new` and the deployment's slots are full; otherwise unchanged. (Runs due
    later are checked when they are claimed; this check only answers a "run now" quickly.)"""
    due_now = run.scheduled_at is not None and run.scheduled_at <= now
    if run.deployment_id is None or not run.state.is_scheduled() or is_held(run) or not due_now:
        return run
    for slot_limit in limits_for(run, store=store):
        if slot_limit.scope != "deployment" or not slot_limit.cancel_new:
            continue
        occupied = slot_limit.occupied(store)
        if occupied >= slot_limit.limit:
            cancelled = Cancelled(slot_limit.cancellation_message(occupied))
            return run.model_copy(update={"state": cancelled, "end_time": now})
    return run


def requeue_waiting(run_id: str, refusal: Throttled, *, store: RunStore, queue: RunQueue,
                    metrics: Metrics, now: datetime) -> None:
    """After a claim was refused for a full slot: send the waiting run a fresh message, due in
    `CONCURRENCY_RETRY_AFTER_SECONDS`, and mark the refusal `details.requeued` so the worker
    deletes the message it holds. Best effort: when the run moved on or the send fails, the
    refusal stays unmarked and the worker lets its own message come back instead."""
    run = store.get_flow_run(run_id)
    if not run.state.is_scheduled() or run.lease is not None or run.pool is None or is_held(run):
        return
    if run.enqueued_at is None or run.enqueued_at <= shift(now, -REQUEUE_REFRESH_AFTER):
        try:
            run = store.update_flow_run(mark_enqueued(run, now))
        except SluiceError:  # a claim or a cancel got there first: nothing to requeue
            return
    try:
        queue.send(run.pool, run_message(run), delay_seconds=int(CONCURRENCY_RETRY_AFTER_SECONDS))
    except (SluiceError, OSError) as exc:
        logger.warning("requeue of waiting flow run %s failed: %r", run.id, exc)
        return
    metrics.count("FlowRunsRequeued", dimensions={"pool": run.pool})
    refusal.details = {**(refusal.details or {}), "requeued": True}

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

First in, first out (issue 15). Without an order, whichever waiting run's requeued message came
back first took a freed slot. Now a run is admitted under a limit only if `occupied + ahead <
limit`, where `ahead` counts the runs that wait for the same limit in the same pool and are due
(scheduled at or before now) and scheduled strictly earlier than it: Scheduled and Late runs and
due AwaitingRetry runs. Not counted, because they could block the queue without ever being
claimed: held runs (a paused deployment's or a backfill's, `queueing.is_held`), runs in an
in-process retry (leased), runs due later (a retry's backoff), runs of the deployment in another
pool (maybe one no worker polls) and, under a pool's limit, runs that wait for their own
deployment's slot (`WAITING_FOR` in their state: a long-running deployment at its limit must not
hold the rest of the pool back). Runs scheduled at the same instant are not ordered. The order
is a fairness rule, not a guarantee: the count comes from the run indexes (on DynamoDB
eventually consistent), an earlier run whose message is lost (found by the monitor's repair
within `DEFAULT_REPAIR_AFTER`) holds later ones back until then, and a claim reads at most the
`MAX_AHEAD_SCANNED` nearest earlier runs, so a run behind more held or deployment-blocked runs
than that may go before older waiting runs. The limit itself is never exceeded (step 2).

Why a run waits is in its state message ("waiting for a slot of deployment etl/nightly: 2/2
running", "waiting for a slot of pool gpu: 3/4 running, 1 queued ahead"), written without a
history entry and only when it changes (not at every refused claim), keeping the state's type
and name (a Late run stays Late). The runs queued ahead are counted (and named in the message)
only when slots are free: when all are taken, counting them would read every waiting run at
every retry, and a number that changes at every admission would rewrite every waiting run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
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
#: `State.details` key of a run refused for a limit: the limit's scope ("deployment" or "pool").
WAITING_FOR = "waiting_for"
#: Most earlier runs one admission reads to tell the runs queued ahead from held ones.
MAX_AHEAD_SCANNED = 100
_SCHEDULED = frozenset({StateType.SCHEDULED})


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
    #: The runs that wait for it with the run it was built for: Scheduled, in the same pool.
    waiting: FlowRunFilter | None = None

    def occupied(self, store: RunStore) -> int:
        return store.count_flow_runs(self.holders)

    def refusal(self, occupied: int) -> Throttled:
        return Wait(self, occupied).refusal()

    def queued_ahead(self, run: FlowRun, *, store: RunStore, now: datetime,
                     free: int) -> tuple[int, bool]:
        """How many runs wait for this limit ahead of `run` (see the module docstring), and
        whether that is all of them (False: only the nearest `MAX_AHEAD_SCANNED` earlier runs
        were read). One cheap count answers when even every earlier Scheduled run, held ones
        included, leaves a free slot for `run`: the number is then an upper bound, below
        `free`. Otherwise the earlier runs are read, nearest first, and counted exactly."""
        if self.waiting is None or run.scheduled_at is None or free <= 0:
            return 0, True
        earlier = replace(self.waiting, scheduled_before=min(run.scheduled_at, now))
        upper_bound = store.count_flow_runs(earlier)
        if upper_bound < free:
            return upper_bound, True
        ahead, scanned, cursor = 0, 0, None
        while scanned < MAX_AHEAD_SCANNED:
            page = store.list_flow_runs(earlier, limit=MAX_AHEAD_SCANNED, cursor=cursor)
            for other in page.items[: MAX_AHEAD_SCANNED - scanned]:
                scanned += 1
                ahead += self._waits_ahead(other, of=run)
            cursor = page.next_cursor
            if cursor is None:
                return ahead, True
        return ahead, False

    def _waits_ahead(self, other: FlowRun, *, of: FlowRun) -> bool:
        blocked_by_its_deployment = (
            self.scope == "pool" and (other.state.details or {}).get(WAITING_FOR) == "deployment"
        )
        return (other.id != of.id and other.state.is_scheduled() and other.lease is None
                and not is_held(other) and not blocked_by_its_deployment)

    def cancellation_message(self, occupied: int) -> str:
        return (
            f"cancelled: {self.scope} {self.name} already runs {occupied} of its {self.limit} "
            "allowed runs (collision strategy cancel_new)"
        )


@dataclass(frozen=True)
class Wait:
    """Why a run may not be claimed now: a limit with `occupied` slots taken and, when slots
    are free, the `ahead` runs queued before it that take them (None: not counted)."""

    limit: SlotLimit
    occupied: int
    ahead: int | None = None
    #: Whether `ahead` counts every run ahead (False: more wait beyond those read).
    ahead_complete: bool = True

    @property
    def message(self) -> str:
        """The waiting run's state message."""
        text = (f"waiting for a slot of {self.limit.scope} {self.limit.name}: "
                f"{self.occupied}/{self.limit.limit} running")
        if not self.ahead:
            return text
        return f"{text}, {self.ahead}{'' if self.ahead_complete else '+'} queued ahead"

    def refusal(self) -> Throttled:
        """The refused claim's answer (429) to the worker."""
        scope, name, limit = self.limit.scope, self.limit.name, self.limit.limit
        if self.ahead:
            why = (f"{scope} {name} has {limit - self.occupied} free slot(s) of {limit}, taken by "
                   f"{self.ahead} earlier run(s) queued ahead (first in, first out)")
        else:
            why = (f"{scope} {name} is at its concurrency limit ({self.occupied} of {limit} "
                   "slots taken)")
        return Throttled(
            f"{why}; the run waits in Scheduled and starts when a slot frees",
            retry_after=CONCURRENCY_RETRY_AFTER_SECONDS,
            details={"reason": CONCURRENCY_LIMIT_REASON, "scope": scope, "name": name,
                     "limit": limit, "occupied": self.occupied, "queued_ahead": self.ahead or 0},
        )


def limits_for(run: FlowRun, *, store: RunStore) -> list[SlotLimit]:
    """The limits that apply to `run` (none when neither its deployment nor its pool has one)."""
    return [limit for limit in (deployment_limit(run, store=store), pool_limit(run, store=store))
            if limit is not None]


def deployment_limit(run: FlowRun, *, store: RunStore) -> SlotLimit | None:
    """The limit of `run`'s deployment, if it has one (one deployment read)."""
    if run.deployment_id is None:
        return None
    try:
        deployment = store.get_deployment(run.deployment_id)
    except NotFound:
        return None  # deleted: its runs still run, without its limit
    if deployment.concurrency_limit is None:
        return None
    return SlotLimit(
        scope="deployment",
        name=f"{deployment.flow_name}/{deployment.name}",
        limit=deployment.concurrency_limit,
        holders=FlowRunFilter.slot_holders(deployment_id=deployment.id),
        cancel_new=deployment.collision_strategy is CollisionStrategy.CANCEL_NEW,
        waiting=FlowRunFilter(deployment_id=deployment.id, pool=run.pool,
                              state_types=_SCHEDULED) if run.pool else None,
    )


def pool_limit(run: FlowRun, *, store: RunStore) -> SlotLimit | None:
    """The limit of `run`'s pool, if it has one (one pool read)."""
    if run.pool is None:
        return None
    try:
        pool = store.get_pool(run.pool)
    except NotFound:
        return None
    if pool.concurrency_limit is None:
        return None
    return SlotLimit(
        scope="pool",
        name=pool.name,
        limit=pool.concurrency_limit,
        holders=FlowRunFilter.slot_holders(pool=pool.name),
        waiting=FlowRunFilter(pool=pool.name, state_types=_SCHEDULED),
    )


def first_wait(limits: list[SlotLimit], run: FlowRun, *, store: RunStore,
               now: datetime) -> Wait | None:
    """Before the claim: the first limit `run` must wait for (all slots taken, or the free ones
    due to runs queued ahead of it), or None when every limit admits it."""
    for slot_limit in limits:
        occupied = slot_limit.occupied(store)
        free = slot_limit.limit - occupied
        if free <= 0:
            return Wait(slot_limit, occupied)
        ahead, complete = slot_limit.queued_ahead(run, store=store, now=now, free=free)
        if ahead >= free:
            return Wait(slot_limit, occupied, ahead, complete)
    return None


def record_waiting_reason(run: FlowRun, wait: Wait, *, store: RunStore) -> None:
    """Say in the waiting run's state message why it waits: `run` as read before its refused
    claim, written compare-and-set without a history entry, keeping the state's type, name and
    time. Nothing is written when the message already says it (a Late run's message may start
    with its lateness), nor when the run changed meanwhile: a claim or a cancel wins."""
    state = run.state
    if (state.message or "").endswith(wait.message) and waiting_scope(run) == wait.limit.scope:
        return
    details = {**(state.details or {}), WAITING_FOR: wait.limit.scope}
    waiting = state.model_copy(update={"message": wait.message, "details": details})
    try:
        store.update_flow_run(run.model_copy(update={"state": waiting}))
    except SluiceError:  # it moved on (claimed, cancelled) or the store pushed back: next time
        return


def waiting_scope(run: FlowRun) -> str | None:
    """The scope ("deployment", "pool") of the limit the run last waited for, if any."""
    scope = (run.state.details or {}).get(WAITING_FOR)
    return scope if isinstance(scope, str) else None


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
    run: FlowRun, *, before: FlowRun, lease: str, now: datetime, message: str,
    waiting_for: str | None = None,
) -> Transition:
    """The claim this call made, taken back: the run as it was before the claim (its Scheduled,
    Late or AwaitingRetry state, attempt count, worker and enqueued time), so the queue message
    the worker keeps can claim it again. Nothing is written if the run moved on meanwhile (a
    user cancelled it: its slot is free anyway)."""
    if run.state.type is not StateType.PENDING or run.lease != lease:
        return Transition(TransitionStatus.REJECT, run, reason="the claim was already superseded")
    details = before.state.details
    if waiting_for is not None:
        details = {**(details or {}), WAITING_FOR: waiting_for}
    waiting = before.state.model_copy(
        update={"timestamp": now, "message": message, "details": details})
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
    # Only the deployment's limit cancels (a pool's makes runs wait): its pool is not read.
    slot_limit = deployment_limit(run, store=store)
    if slot_limit is None or not slot_limit.cancel_new:
        return run
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
    requeue_run(run, refusal, delay_seconds=int(CONCURRENCY_RETRY_AFTER_SECONDS), store=store,
                queue=queue, metrics=metrics, now=now)


def requeue_run(run: FlowRun, refusal: Throttled, *, delay_seconds: int, store: RunStore,
                queue: RunQueue, metrics: Metrics, now: datetime) -> None:
    """Send waiting `run` (of a pool) a fresh message due in `delay_seconds` and mark the
    refusal `details.requeued`; its `enqueued_at` is refreshed when old (see
    `REQUEUE_REFRESH_AFTER`). Best effort, as `requeue_waiting`."""
    assert run.pool is not None
    if run.enqueued_at is None or run.enqueued_at <= shift(now, -REQUEUE_REFRESH_AFTER):
        try:
            run = store.update_flow_run(mark_enqueued(run, now))
        except SluiceError:  # a claim or a cancel got there first: nothing to requeue
            return
    try:
        queue.send(run.pool, run_message(run), delay_seconds=delay_seconds)
    except (SluiceError, OSError) as exc:
        logger.warning("requeue of waiting flow run %s (pool %s) failed: %r", run.id, run.pool,
                       exc)
        return
    metrics.count("FlowRunsRequeued", dimensions={"pool": run.pool})
    refusal.details = {**(refusal.details or {}), "requeued": True}

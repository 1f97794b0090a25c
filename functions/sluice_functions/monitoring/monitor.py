"""The monitor tick: EventBridge `rate(1 minute)` in AWS, a timer in the embedded server.

Three passes, each safe to run concurrently with itself and with the scheduler:

1. Crashed: a run that holds a live attempt (`orchestration.holds_live_attempt`: leased and not
   terminal - Pending, Running, Paused, Cancelling, or Scheduled while its process waits for an
   in-process retry) whose last sign of life (heartbeat, else start, else claim) is older than
   the heartbeat timeout (the lease) plus its margin (`orchestration.leases`), and whose stored
   lease expiry passed by that margin too, and whose worker session (per-worker heartbeats,
   `service.worker_leases`) has not renewed it within that time either (each session is read
   once per tick; a run its session did renew gets that renewal as its `heartbeat_at`), goes
   through `service.mark_crashed`: Crashed, or
   AwaitingRetry and
   enqueued again when the flow has retries left. The write re-checks the heartbeat, so a
   heartbeat that lands meanwhile wins; a run that already ended is refused by the rules, so a
   terminal state always wins over a late heartbeat (and the crashed attempt's lease is dead:
   its late reports get 409). Crashing frees the run's concurrency slot.
2. Late: a run still "Scheduled" (not AwaitingRetry, not held, not part of a backfill whose
   times are past by design) `late_grace` after its time is renamed Late (same state type, it
   keeps its queue message) and counted in the `LateRuns` metric. Its message says why, from
   what the control plane knows: the concurrency limit the run waits for (`service.concurrency`
   wrote it at its refused claim), else its pool's workers as last seen (none ever, none online
   and since when, or how many are online). The workers are read once per pool per tick.
3. Repair: `service.enqueue_due_runs` with `repair_after`: a due, unclaimed run whose message
   went out longer ago than that (the API died between its write and its send, or the message
   dead-lettered) gets a new message. A duplicate is harmless: the claim names the attempt.

Each run is handled on its own (`isolation`): one whose handling raises anything (a store
error, a stored value that overflows or no longer makes sense) is logged with its id, counted in
`TickRecordErrors` (tick=monitor) and in the result's `failed`, and skipped; the pass goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from sluice.exceptions import Conflict, NotFound
from sluice.models import (
    MAX_PAGE_LIMIT,
    FlowRun,
    Late,
    StateType,
    TransitionStatus,
    utcnow,
)

from .. import automations, orchestration
from ..isolation import isolated
from ..orchestration import LeasePolicy, Mover, Transition, holds_live_attempt
from ..ports import Metrics, RunQueue, RunStore, WorkerSession
from ..scheduling.holds import backfill_id_of
from ..service.concurrency import waiting_scope
from ..service.flow_runs import enqueue_due_runs
from ..service.lifecycle import apply_server_transition, lease_outlives, mark_crashed
from ..service.pools import WORKER_ONLINE_WITHIN
from ..service.queueing import is_held
from ..service.worker_leases import note_session_renewal, session_renewal
from ..timemath import seconds, shift
from .dead_letters import report_dead_letters
from .watch_events import watch_pools_and_workers

logger = logging.getLogger(__name__)

#: The `tick` dimension of this tick's `TickRecordErrors`.
TICK = "monitor"
DEFAULT_LATE_GRACE = timedelta(seconds=15)
#: SQS shows a message at most 15 minutes after it was sent; unclaimed 5 minutes after that,
#: the message is presumed lost.
DEFAULT_REPAIR_AFTER = timedelta(minutes=20)
#: Most runs one pass looks at; the rest wait for the next tick (Lambda time limit).
MAX_RUNS_PER_PASS = 2000
#: State types whose runs may hold a live attempt (Scheduled: waiting for an in-process retry).
_LONG_AGO = datetime(1970, 1, 1, tzinfo=timezone.utc)
LIVE_STATE_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
                    StateType.CANCELLING, StateType.SCHEDULED)


@dataclass
class MonitorTickResult:
    """What one monitor tick did."""

    crashed: int = 0
    retried: int = 0
    late: int = 0
    repaired: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def monitor_runs(
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    heartbeat_timeout: timedelta | float,
    now: datetime | None = None,
    late_grace: timedelta | float = DEFAULT_LATE_GRACE,
    repair_after: timedelta | float = DEFAULT_REPAIR_AFTER,
) -> MonitorTickResult:
    """One monitor tick (see the module docstring); durations are timedeltas or seconds."""
    now = now or utcnow()
    result = MonitorTickResult()
    timeout, grace, repair = (_duration(v) for v in (heartbeat_timeout, late_grace, repair_after))
    crash_silent_runs(store=store, queue=queue, metrics=metrics, now=now,
                      heartbeat_timeout=timeout, result=result)
    mark_late_runs(store=store, queue=queue, metrics=metrics, now=now, late_grace=grace,
                   result=result)
    result.repaired = enqueue_due_runs(store=store, queue=queue, metrics=metrics, now=now,
                                       resend_unclaimed_after=repair, failures=result, tick=TICK)
    try:
        watch_pools_and_workers(store=store, queue=queue, now=now)
    except Exception:  # noqa: BLE001 - events about pools never stop the runs' monitoring
        logger.exception("monitor: recording worker/dead-letter events failed")
        metrics.count("TickRecordErrors", dimensions={"tick": TICK})
    try:
        report_dead_letters(store=store, queue=queue, metrics=metrics)
    except Exception:  # noqa: BLE001 - the pools' list is unreadable; the next tick reports
        logger.exception("monitor: reporting dead-letter depths failed")
        metrics.count("TickRecordErrors", dimensions={"tick": TICK})
    automations.evaluate_proactive(store=store, now=now)  # proactive triggers; never raises
    return result


def crash_silent_runs(*, store: RunStore, queue: RunQueue, metrics: Metrics, now: datetime,
                      heartbeat_timeout: timedelta, result: MonitorTickResult) -> None:
    """Pass 1: crash (or retry) every live attempt whose heartbeat expired."""
    # The lease expired `margin` ago: its holder has fenced itself (orchestration.leases).
    policy = LeasePolicy(heartbeat_timeout)
    expired_before = policy.silent_since(now)
    sessions: dict[str, WorkerSession | None] = {}  # worker sessions read this tick
    for state_type in LIVE_STATE_TYPES:
        # A Scheduled run's process waits until its retry time, so only due ones can be late.
        due_before = now if state_type is StateType.SCHEDULED else None
        for run in _runs_in(store, state_type, scheduled_before=due_before):
            with isolated(TICK, f"flow run {run.id}", metrics=metrics, result=result):
                _crash_if_silent(run, store=store, queue=queue, metrics=metrics, now=now,
                                 policy=policy, expired_before=expired_before, result=result,
                                 sessions=sessions)


def _crash_if_silent(run: FlowRun, *, store: RunStore, queue: RunQueue, metrics: Metrics,
                     now: datetime, policy: LeasePolicy, expired_before: datetime,
                     result: MonitorTickResult,
                     sessions: dict[str, WorkerSession | None]) -> None:
    """Pass 1 for one run."""
    if not holds_live_attempt(run) or last_sign_of_life(run) >= expired_before:
        return
    if lease_outlives(run, now - policy.margin):
        return  # granted on longer terms (the timeout was shortened since): those still hold
    renewed_at = session_renewal(run, store=store, since=expired_before, sessions=sessions)
    if renewed_at is not None:
        # Its worker's per-worker heartbeat renews it (a session silent since then has expired,
        # so no later beat of it can renew the run: service.worker_leases); the run shows it.
        note_session_renewal(run, renewed_at, store=store)
        return
    message = crash_message(run, policy)
    try:
        # The verdict is about the attempt read here (its lease): one that ended
        # meanwhile is left alone, so its retry is not crashed before it starts.
        answer = mark_crashed(run.id, store=store, queue=queue, metrics=metrics,
                              message=message, heartbeat_expired_before=expired_before,
                              lease=run.lease, lease_expired_before=now - policy.margin,
                              now=now)
    except (Conflict, NotFound):
        return  # it kept changing: alive after all, or someone else decided
    if answer.status is not TransitionStatus.ACCEPT:
        return  # a heartbeat or a final state won
    dimensions = {"pool": run.pool or ""}
    metrics.count("CrashedRuns", dimensions=dimensions)
    if answer.state.type is StateType.SCHEDULED:
        result.retried += 1
        metrics.count("CrashedRunsRetried", dimensions=dimensions)
    else:
        result.crashed += 1


def mark_late_runs(*, store: RunStore, queue: RunQueue, metrics: Metrics, now: datetime,
                   late_grace: timedelta, result: MonitorTickResult) -> None:
    """Pass 2: rename runs that should have started `late_grace` ago."""
    pool_reasons: dict[str, str] = {}  # pool -> why its runs may wait, read once this tick
    for run in _runs_in(store, StateType.SCHEDULED, scheduled_before=shift(now, -late_grace)):
        with isolated(TICK, f"flow run {run.id}", metrics=metrics, result=result):
            _mark_if_late(run, store=store, queue=queue, metrics=metrics, now=now,
                          result=result, pool_reasons=pool_reasons)


def _mark_if_late(run: FlowRun, *, store: RunStore, queue: RunQueue, metrics: Metrics,
                  now: datetime, result: MonitorTickResult,
                  pool_reasons: dict[str, str]) -> None:
    """Pass 2 for one run."""
    if not _may_be_late(run):
        return
    scheduled_at = run.scheduled_at

    def decide(current: FlowRun) -> Transition:
        if not _may_be_late(current) or current.scheduled_at != scheduled_at:
            return Transition(TransitionStatus.REJECT, current, reason="no longer waiting")
        assert current.scheduled_at is not None
        late_by = int((now - current.scheduled_at).total_seconds())
        reason = _why_waiting(current, store=store, now=now, pool_reasons=pool_reasons)
        late = Late(scheduled_time=current.scheduled_at,
                    message=f"not started {late_by} s after its scheduled time; {reason}")
        if waiting_scope(current) is not None:  # still waiting for that limit's slot
            late = late.model_copy(update={"details": current.state.details})
        return orchestration.propose_state(current, late, now=now, mover=Mover.SERVER)

    try:
        outcome = apply_server_transition(run.id, decide, store=store, queue=queue,
                                          metrics=metrics, now=now)
    except (Conflict, NotFound):
        return
    if outcome.accepted and outcome.write:
        result.late += 1
        metrics.count("LateRuns", dimensions={"pool": run.pool or ""})


def _why_waiting(run: FlowRun, *, store: RunStore, now: datetime,
                 pool_reasons: dict[str, str]) -> str:
    """Why a run that should have started has not: the limit it waits for, else its pool's
    workers (`pool_reasons` caches them per pool for the tick)."""
    if waiting_scope(run) is not None and run.state.message:
        return run.state.message
    assert run.pool is not None
    if run.pool not in pool_reasons:
        pool_reasons[run.pool] = pool_workers_reason(run.pool, store=store, now=now)
    return pool_reasons[run.pool]


def pool_workers_reason(pool: str, *, store: RunStore, now: datetime) -> str:
    """What the pool's workers, as last seen, tell about a run of it that has not started."""
    workers = store.list_workers(pool)
    start_one = f"start one: sluice worker start --pool {pool}"
    if not workers:
        return f"no worker has polled pool '{pool}' ({start_one})"
    online_since = now - WORKER_ONLINE_WITHIN
    online = [w for w in workers if w.last_seen is not None and w.last_seen >= online_since]
    if not online:
        seen = [w.last_seen for w in workers if w.last_seen is not None]
        last = f"last seen {_ago(now - max(seen))} ago" if seen else "never seen"
        return f"no worker of pool '{pool}' online ({last}; {start_one})"
    count = f"{len(online)} worker{'s' if len(online) != 1 else ''}"
    return f"{count} of pool '{pool}' online; all busy or at a concurrency limit"


def _ago(elapsed: timedelta) -> str:
    """A duration as people say it: "40 s", "12 min", "3 h", "2 days"."""
    total = max(0, int(elapsed.total_seconds()))
    if total < 120:
        return f"{total} s"
    if total < 2 * 3600:
        return f"{total // 60} min"
    if total < 2 * 86400:
        return f"{total // 3600} h"
    return f"{total // 86400} days"


def crash_message(run: FlowRun, policy: LeasePolicy) -> str:
    """Why the monitor crashed a run: how long it was silent, and who held it."""
    seconds = int((policy.duration + policy.margin).total_seconds())
    holder = (f"worker {run.worker} or its flow process died, was stopped, or lost the "
              "control plane" if run.pool is not None else
              "process running it (a script, or its parent flow's process) was killed, was "
              "stopped, or lost the control plane")
    return (f"no heartbeat for over {seconds} s (last at "
            f"{last_sign_of_life(run).isoformat()}): the {holder}")


def last_sign_of_life(run: FlowRun) -> datetime:
    """When the run's attempt last proved alive: its heartbeat, else its start, else its last
    write (the claim sets `heartbeat_at`, so this is rarely needed)."""
    for when in (run.heartbeat_at, run.start_time, run.updated, run.created):
        if when is not None:
            return when
    return _LONG_AGO


def _may_be_late(run: FlowRun) -> bool:
    return (
        run.state.type is StateType.SCHEDULED
        and run.state.name == "Scheduled"
        and run.pool is not None
        and run.lease is None
        and not is_held(run)
        and backfill_id_of(run) is None
    )


def _runs_in(store: RunStore, state_type: StateType, *,
             scheduled_before: datetime | None) -> Iterator[FlowRun]:
    """Runs in `state_type`, oldest first, at most `MAX_RUNS_PER_PASS`."""
    cursor: str | None = None
    seen = 0
    while seen < MAX_RUNS_PER_PASS:
        page = store.list_flow_runs_by_state(state_type, scheduled_before=scheduled_before,
                                             limit=MAX_PAGE_LIMIT, cursor=cursor)
        for run in page.items[: MAX_RUNS_PER_PASS - seen]:
            seen += 1
            yield run
        cursor = page.next_cursor
        if cursor is None:
            return


def _duration(value: timedelta | float) -> timedelta:
    return value if isinstance(value, timedelta) else seconds(value)

"""The scheduler tick: EventBridge `rate(1 minute)` in AWS, a timer in the embedded server.

Each tick, for every unpaused deployment and each of its active schedules:

1. Upcoming runs: the next `MIN_UPCOMING_RUNS` times or every time within `UPCOMING_HORIZON`,
   whichever is more (at most `MAX_UPCOMING_RUNS`), exist as Scheduled runs with the slot's
   deterministic id (`schedules.slot_run_id`). They are created *held* (see `holds`) unless due
   before the next tick, in which case they are created released and enqueued at once.
   However often or concurrently the tick fires, the store's conditional insert lets exactly
   one create per slot succeed.
2. Release: held runs due before the next tick (`release_ahead`) are released and enqueued
   with `DelaySeconds`, so they appear at their second.
3. Catch-up, when ticks were missed or the deployment was paused: a time at or before now
   that was not released in time is *missed* (a held run still waiting, or a slot with no run
   at all). `catchup=False` (default) starts only the most recent missed time; `catchup=True`
   starts every missed time, both within `max_lateness_seconds` when set. Missed held runs
   that are not started are Cancelled ("skipped"); missing slots that are not started are
   simply not created. A time missed by less than one tick interval is merely late and always
   starts. A slot with no run counts as missed only if the schedule demonstrably existed then:
   a run of the schedule exists at an earlier time, or the time is after the deployment's last
   update (so adding a schedule, or creating a deployment, never starts past times). The walk
   back looks at most `MAX_CATCHUP_SLOTS` times.
4. Held runs whose schedule was removed, deactivated or changed, or whose deployment was
   deleted, are Cancelled; a released run takes the deployment's current parameters, pool and
   retries (pre-created runs never start with stale settings).

Pausing stops all of this for the deployment: its held runs stay held and are handled by the
catch-up policy on resume. After the deployments, the tick feeds backfills (`backfill`) and
sends the messages of other due runs (`service.enqueue_due_runs`).

Each deployment, schedule, held run and backfill is handled on its own (`isolation`): one whose
handling raises anything is logged with its id, counted in `TickRecordErrors` and in the
result's `failed`, and skipped; the others are still scheduled.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from itertools import islice

from sluice.exceptions import NotFound, ValidationError
from sluice.models import (
    MAX_PAGE_LIMIT,
    Deployment,
    FlowRun,
    FlowRunCreate,
    Schedule,
    StateType,
    new_state,
    utcnow,
)

from ..isolation import isolated
from ..ports import Metrics, RunQueue, RunStore
from ..service.flow_runs import create_flow_run_once, enqueue_due_runs
from ..service.parameter_schema import validate_parameters
from ..service.queueing import ENQUEUE_HORIZON
from ..timemath import seconds, shift
from .backfill import feed_backfills
from .holds import (
    AUTO_SCHEDULED_TAG,
    SCHEDULE_HOLD,
    cancel_held_run,
    hold_detail,
    holder,
    note_held_run,
    release_held_run,
    schedule_hold,
)
from .schedules import (
    is_schedule_time,
    iter_times_before,
    schedule_key,
    slot_run_id,
    upcoming_times,
)

logger = logging.getLogger(__name__)

#: How often the tick fires (the EventBridge rule's rate).
DEFAULT_TICK_INTERVAL = timedelta(minutes=1)
MIN_UPCOMING_RUNS = 3
UPCOMING_HORIZON = timedelta(hours=1)
MAX_UPCOMING_RUNS = 100
MAX_CATCHUP_SLOTS = 100
#: `created_by` of the runs the scheduler creates.
SCHEDULER_ACTOR = "scheduler"
#: The `tick` dimension of this tick's `TickRecordErrors`.
TICK = "scheduler"
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass
class SchedulerTickResult:
    """What one tick did (logged by the handler and returned to Lambda)."""

    deployments: int = 0
    created: int = 0
    released: int = 0
    skipped: int = 0
    cancelled: int = 0
    backfill_released: int = 0
    enqueued: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class CatchUpPolicy:
    """Which missed times of a schedule still start (see the module docstring)."""

    catchup: bool
    max_lateness: timedelta | None
    #: Later than this is "missed"; up to it, merely late.
    on_time_grace: timedelta

    @classmethod
    def of(cls, deployment: Deployment, on_time_grace: timedelta) -> CatchUpPolicy:
        lateness = deployment.max_lateness_seconds
        return cls(
            catchup=deployment.catchup,
            max_lateness=None if lateness is None else seconds(lateness),
            on_time_grace=on_time_grace,
        )

    def should_start(self, slot: datetime, *, now: datetime, latest: datetime | None) -> bool:
        """Whether the time `slot` (at or before `now`) starts; `latest` is the schedule's most
        recent time at or before `now`."""
        lateness = now - slot
        if lateness <= self.on_time_grace:
            return True
        if self.max_lateness is not None and lateness > self.max_lateness:
            return False
        return self.catchup or slot == latest


def release_ahead(tick_interval: timedelta) -> timedelta:
    """How far ahead runs are released: two ticks, so one late tick never makes a run late."""
    return min(2 * tick_interval, ENQUEUE_HORIZON)


def schedule_deployments(
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime | None = None,
    tick_interval: timedelta = DEFAULT_TICK_INTERVAL,
) -> SchedulerTickResult:
    """One scheduler tick (see the module docstring). Safe to run concurrently with itself.

    A deployment, schedule, held run or backfill that fails (a stored schedule that no longer
    validates, a value that overflows, a store error) is logged with its id and counted in
    `failed` and `TickRecordErrors`; the others are still scheduled.
    """
    tick = _Tick(store=store, queue=queue, metrics=metrics, now=now or utcnow(),
                 tick_interval=tick_interval)
    scheduled = scan_scheduled_runs(store)
    tick.known_ids = {run.id for run in scheduled}
    held: dict[str, list[FlowRun]] = defaultdict(list)
    for run in scheduled:
        if holder(run) == SCHEDULE_HOLD and run.deployment_id is not None:
            held[run.deployment_id].append(run)
    seen: set[str] = set()
    for deployment in iter_deployments(store):
        seen.add(deployment.id)
        tick.result.deployments += 1
        with tick.isolated(f"deployment {deployment.id} ({deployment.flow_name}/"
                           f"{deployment.name})"):
            tick.schedule_deployment(deployment, held.get(deployment.id, []))
    for deployment_id, orphans in held.items():
        if deployment_id not in seen:
            for run in orphans:
                with tick.isolated(f"flow run {run.id} (of deleted deployment {deployment_id})"):
                    tick.cancel(run, "its deployment was deleted")
    with tick.isolated("backfills"):
        tick.result.backfill_released = feed_backfills(
            scheduled, store=store, queue=queue, metrics=metrics, now=tick.now,
            failures=tick.result,
        )
    # Last, and always: the messages of due runs (created or released above, or by the API).
    tick.result.enqueued = enqueue_due_runs(store=store, queue=queue, metrics=metrics, now=tick.now,
                                            failures=tick.result, tick=TICK)
    for name, value in (("ScheduledRunsCreated", tick.result.created),
                        ("ScheduledRunsSkipped", tick.result.skipped),
                        ("SchedulerErrors", tick.result.failed)):
        if value:
            metrics.count(name, value)
    return tick.result


def scan_scheduled_runs(store: RunStore) -> list[FlowRun]:
    """Every Scheduled run, oldest first (held ones included). Scheduled runs are bounded: the
    upcoming runs of each schedule plus waiting backfill runs."""
    runs: list[FlowRun] = []
    cursor: str | None = None
    while True:
        page = store.list_flow_runs_by_state(
            StateType.SCHEDULED, limit=MAX_PAGE_LIMIT, cursor=cursor
        )
        runs.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return runs


def iter_deployments(store: RunStore) -> Iterator[Deployment]:
    """Every deployment, a page at a time."""
    cursor: str | None = None
    while True:
        page = store.list_deployments(limit=MAX_PAGE_LIMIT, cursor=cursor)
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


class _Tick:
    """The state of one tick: its ports, clock, the runs known to exist, and its counts."""

    def __init__(self, *, store: RunStore, queue: RunQueue, metrics: Metrics, now: datetime,
                 tick_interval: timedelta) -> None:
        self.store, self.queue, self.metrics = store, queue, metrics
        self.now = now
        self.tick_interval = tick_interval
        self.release_until = shift(now, release_ahead(tick_interval))
        self.known_ids: set[str] = set()
        self.result = SchedulerTickResult()

    def isolated(self, what: str):
        """A block handling one record (`isolation.isolated`)."""
        return isolated(TICK, what, metrics=self.metrics, result=self.result)

    def exists(self, run_id: str) -> bool:
        if run_id in self.known_ids:
            return True
        try:
            self.store.get_flow_run(run_id)
        except NotFound:
            return False
        self.known_ids.add(run_id)
        return True

    # ---- one deployment --------------------------------------------------------------------------

    def schedule_deployment(self, deployment: Deployment, held: list[FlowRun]) -> None:
        if deployment.paused:  # its held runs wait for the resume (and the catch-up policy)
            self.note_paused(deployment, held)
            return
        active = {schedule_key(s): s for s in deployment.schedules if s.active}
        held_by_key: dict[str, list[FlowRun]] = defaultdict(list)
        for run in held:
            key = hold_detail(run, "schedule")
            schedule = active.get(key)
            if schedule is None or not _fires_at(schedule, run.scheduled_at):
                with self.isolated(f"flow run {run.id}"):
                    self.cancel(run, "its schedule was removed, deactivated or changed")
            else:
                held_by_key[key].append(run)
        for key, schedule in active.items():
            with self.isolated(f"schedule {key} of deployment {deployment.id} "
                               f"({deployment.flow_name}/{deployment.name})"):
                self.schedule_one(deployment, schedule, key, held_by_key[key])

    def note_paused(self, deployment: Deployment, held: list[FlowRun]) -> None:
        """Held runs that came due while the deployment is paused say why they wait."""
        ref = f"{deployment.flow_name}/{deployment.name}"
        message = (f"waiting: deployment {ref} is paused; on resume the catch-up policy "
                   f"decides whether this time still runs (sluice deployment resume {ref})")
        for run in held:
            if run.scheduled_at is not None and run.scheduled_at <= self.now \
                    and run.state.message != message:
                with self.isolated(f"flow run {run.id}"):
                    note_held_run(run, expected_holder=SCHEDULE_HOLD, message=message,
                                  store=self.store, now=self.now)

    def schedule_one(
        self, deployment: Deployment, schedule: Schedule, key: str, held: list[FlowRun]
    ) -> None:
        now = self.now
        policy = CatchUpPolicy.of(deployment, on_time_grace=self.tick_interval)
        refresh = _refresher(deployment, schedule)
        missing, latest = self.missed_slots(deployment, schedule, key, policy)
        for run in sorted(held, key=lambda r: r.scheduled_at or now):
            with self.isolated(f"flow run {run.id}"):
                self.handle_held(run, deployment, policy, refresh, latest)
        for slot in reversed(missing):
            if policy.should_start(slot, now=now, latest=latest):
                self.create(deployment, schedule, key, slot, held=False)
        for slot in upcoming_times(schedule, now, min_count=MIN_UPCOMING_RUNS,
                                   horizon=UPCOMING_HORIZON, max_count=MAX_UPCOMING_RUNS):
            if not self.exists(slot_run_id(deployment.id, key, slot)):
                self.create(deployment, schedule, key, slot, held=slot >= self.release_until)

    def handle_held(self, run: FlowRun, deployment: Deployment, policy: CatchUpPolicy,
                    refresh: Callable[[FlowRun], FlowRun], latest: datetime | None) -> None:
        """Release, skip or leave one held run of a schedule."""
        now = self.now
        assert run.scheduled_at is not None
        if run.scheduled_at > now:
            if run.scheduled_at < self.release_until:
                self.release(run, refresh)
        elif policy.should_start(run.scheduled_at, now=now, latest=latest):
            self.release(run, refresh, message="started late: missed while the scheduler "
                                               "was not running or the deployment paused")
        else:
            self.skip(run, deployment)

    def missed_slots(
        self, deployment: Deployment, schedule: Schedule, key: str, policy: CatchUpPolicy
    ) -> tuple[list[datetime], datetime | None]:
        """The times at or before now that have no run but should have one (newest first), and
        the schedule's most recent time at or before now."""
        missing: list[datetime] = []
        latest: datetime | None = None
        since = deployment.updated or deployment.created
        found_earlier_run = False
        at_or_before_now = iter_times_before(schedule, shift(self.now, _ONE_MICROSECOND))
        for slot in islice(at_or_before_now, MAX_CATCHUP_SLOTS):
            latest = latest or slot
            if deployment.created is not None and slot <= deployment.created:
                break
            if self.exists(slot_run_id(deployment.id, key, slot)):
                found_earlier_run = True
                break
            missing.append(slot)
            if not policy.catchup and since is not None and latest > since \
                    and slot < shift(self.now, -policy.on_time_grace):
                break  # only the latest can start, and it counts as missed either way
        if not found_earlier_run:
            # No earlier run of this schedule: it is new since `since`, or so long silent that
            # only times after its deployment's last update (e.g. the resume) count.
            missing = [slot for slot in missing if since is not None and slot > since]
        return missing, latest

    # ---- writes ----------------------------------------------------------------------------------

    def create(self, deployment: Deployment, schedule: Schedule, key: str, slot: datetime, *,
               held: bool) -> None:
        run_id = slot_run_id(deployment.id, key, slot)
        state = None
        if held:
            state = new_state(StateType.SCHEDULED, "Scheduled", scheduled_time=slot,
                              details=schedule_hold(key))
        request = FlowRunCreate(
            id=run_id, flow_name=deployment.flow_name, deployment_id=deployment.id,
            parameters=dict(schedule.parameters), tags=[AUTO_SCHEDULED_TAG], scheduled_at=slot,
            state=state,
        )
        _, created = create_flow_run_once(
            request, store=self.store, queue=self.queue, metrics=self.metrics,
            created_by=SCHEDULER_ACTOR, now=self.now,
        )
        self.known_ids.add(run_id)
        self.result.created += int(created)

    def release(self, run: FlowRun, refresh: Callable[[FlowRun], FlowRun],
                message: str | None = None) -> None:
        released = release_held_run(
            run.id, expected_holder=SCHEDULE_HOLD, message=message, refresh=refresh,
            store=self.store, queue=self.queue, metrics=self.metrics, now=self.now,
        )
        self.result.released += int(released)

    def skip(self, run: FlowRun, deployment: Deployment) -> None:
        policy = ("only the most recent missed run starts (catchup is off)"
                  if not deployment.catchup else
                  f"it is over max_lateness_seconds={deployment.max_lateness_seconds:g} late")
        message = ("skipped: missed while the scheduler was not running or the deployment was "
                   f"paused; {policy}")
        skipped = cancel_held_run(
            run.id, expected_holder=SCHEDULE_HOLD, message=message,
            store=self.store, queue=self.queue, metrics=self.metrics, now=self.now,
        )
        self.result.skipped += int(skipped)

    def cancel(self, run: FlowRun, why: str) -> None:
        cancelled = cancel_held_run(
            run.id, expected_holder=SCHEDULE_HOLD, message=f"not started: {why}",
            store=self.store, queue=self.queue, metrics=self.metrics, now=self.now,
        )
        self.result.cancelled += int(cancelled)


def _fires_at(schedule: Schedule, when: datetime | None) -> bool:
    try:
        return when is not None and is_schedule_time(schedule, when)
    except (ValueError, LookupError, OverflowError, TypeError):
        return False  # a stored schedule (or time) that no longer computes


def _refresher(deployment: Deployment, schedule: Schedule) -> Callable[[FlowRun], FlowRun]:
    """The update a held run gets on release: the deployment's current parameters (merged with
    the schedule's), pool and retries, as a run created now would have them."""

    def refresh(run: FlowRun) -> FlowRun:
        update: dict[str, object] = {
            "pool": deployment.pool,
            "retries": deployment.retries,
            "retry_delay_seconds": deployment.retry_delay_seconds,
        }
        parameters = {**deployment.parameters, **schedule.parameters}
        if parameters != run.parameters:
            try:
                validate_parameters(parameters, deployment.parameter_schema)
                update["parameters"] = parameters
            except ValidationError:
                logger.warning("run %s keeps its parameters: the deployment's no longer "
                               "validate", run.id)
        return run.model_copy(update=update)

    return refresh

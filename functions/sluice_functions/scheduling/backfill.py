"""Backfills: the runs a deployment's schedules would have made in a past window, fed a few at
a time.

`backfill_deployment` creates, for every active schedule's time in [start, end), the run with
the slot's deterministic id (`schedules.slot_run_id`) - the id the scheduler uses - so a time
that already has a run is never doubled. An existing run is left alone unless `reprocess` says
otherwise: `"failed"` starts a new attempt of Failed and Crashed runs (a retry: same run, tasks
with persisted results are not run again); `"all"` does that and re-runs Completed and
Cancelled ones too - those states are final for their run, so the re-run is a new run with an
id derived from the slot's and the backfill's (one re-run per slot per backfill).

Feeding: every run the backfill starts carries the tag `backfill:<id>`; those beyond
`max_active` wait *held* (`holds`) with the backfill's id and `max_active` in the hold, so no
separate record is needed. `feed_backfills` (each scheduler tick, and once at the end of the
backfill call) releases the oldest held runs of each backfill while fewer than `max_active` of
its runs are in flight (released and not finished), and never more than the deployment's free
concurrency slots. Concurrent ticks may each release up to the free room, so `max_active` is
a target that a double-fired tick can exceed briefly; the deployment's `concurrency_limit` is
the hard limit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Literal

from sluice.exceptions import NotFound, ValidationError
from sluice.models import (
    MAX_BACKFILL_RUNS,  # most runs one backfill creates (and its largest max_active)
    MAX_PAGE_LIMIT,
    MAX_TAGS,
    Deployment,
    FlowRun,
    FlowRunCreate,
    StateType,
    new_state,
    utcnow,
)

from .. import orchestration
from ..isolation import CountsFailures, isolated
from ..orchestration import Transition
from ..ports import ACTIVE_STATE_TYPES, FlowRunFilter, Metrics, RunQueue, RunStore
from ..service.deployments import get_deployment
from ..service.flow_runs import create_flow_run_once
from ..service.lifecycle import apply_server_transition
from ..service.limits import check_parameters
from ..service.parameter_schema import validate_parameters
from .holds import (
    BACKFILL_HOLD,
    backfill_hold,
    backfill_id_of,
    backfill_tag,
    cancel_held_run,
    hold_detail,
    holder,
    release_held_run,
)
from .schedules import (
    SLOT_ID_NAMESPACE,
    schedule_key,
    slot_run_id,
    times_between,
    validate_schedule,
)

Reprocess = Literal["none", "failed", "all"]
REPROCESS_CHOICES: tuple[str, ...] = ("none", "failed", "all")
#: `created_by` of backfill runs when the caller does not say who asked.
BACKFILL_ACTOR = "backfill"
#: Backfills are fed by the scheduler tick (the `tick` dimension of their `TickRecordErrors`).
_TICK = "scheduler"
_BACKFILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RETRYABLE = frozenset({StateType.FAILED, StateType.CRASHED})


@dataclass
class BackfillResult:
    """What a backfill did."""

    backfill_id: str
    #: Times in the window, over all active schedules.
    slots: int = 0
    created: int = 0
    #: Failed/Crashed runs retried, plus Completed/Cancelled runs re-run as new runs.
    reprocessed: int = 0
    #: Times that already had a run, left alone.
    existing: int = 0
    #: Runs started at once (the rest wait held until a later tick feeds them).
    released: int = 0
    run_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def backfill_deployment(
    ref: str,
    start: datetime,
    end: datetime,
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    reprocess: Reprocess = "none",
    max_active: int | None = None,
    backfill_id: str | None = None,
    created_by: str | None = None,
    now: datetime | None = None,
) -> BackfillResult:
    """Create the runs the deployment's active schedules would have made in [start, end) and
    start at most `max_active` of them at a time (None: all at once).

    `backfill_id` (client-chosen, e.g. for a retried request) makes the call idempotent; absent,
    a new id is made. Raises `NotFound` (deployment) and `ValidationError` (window, options, no
    active schedule, more than `MAX_BACKFILL_RUNS` times) before writing anything.
    """
    now = now or utcnow()
    deployment = get_deployment(ref, store=store)
    _check_request(deployment, start, end, now, reprocess, max_active, backfill_id)
    backfill_id = backfill_id or uuid.uuid4().hex[:12]
    slots = _slots(deployment, start, end)
    result = BackfillResult(backfill_id=backfill_id, slots=len(slots))
    backfill = _Backfill(deployment, backfill_id, max_active, created_by, store, queue, metrics,
                         now)
    for slot, key, parameters in slots:
        run_id = backfill.start_slot(slot, key, parameters, reprocess, result)
        if run_id is not None:
            result.run_ids.append(run_id)
    from .tick import scan_scheduled_runs  # the tick imports this module

    result.released = feed_backfills(
        scan_scheduled_runs(store), store=store, queue=queue, metrics=metrics, now=now,
        only=backfill_id,
    )
    metrics.count("BackfillRunsCreated", result.created + result.reprocessed)
    return result


def feed_backfills(
    scheduled: Sequence[FlowRun],
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime,
    only: str | None = None,
    failures: CountsFailures | None = None,
) -> int:
    """Release held backfill runs, oldest first, while their backfill has fewer than its
    `max_active` runs in flight and their deployment has free slots. `scheduled` is every
    Scheduled run (oldest first). Returns how many runs were released.

    Each backfill and each of its runs is handled on its own (`isolation`): one that fails is
    logged, counted (in `failures.failed` too, when given) and skipped."""
    waiting: dict[str, list[FlowRun]] = {}
    released_unclaimed: dict[str, int] = {}
    for run in scheduled:
        backfill_id = backfill_id_of(run)
        if backfill_id is None or (only is not None and backfill_id != only):
            continue
        if holder(run) == BACKFILL_HOLD:
            waiting.setdefault(backfill_id, []).append(run)
        else:
            released_unclaimed[backfill_id] = released_unclaimed.get(backfill_id, 0) + 1
    released = 0

    def one(what: str):
        return isolated(_TICK, what, metrics=metrics, result=failures)

    for backfill_id, runs in waiting.items():
        room: int | None = 0
        with one(f"backfill {backfill_id}"):
            room = _room(runs, backfill_id, released_unclaimed.get(backfill_id, 0), store=store)
        if room is None:  # the deployment was deleted
            for run in runs:
                with one(f"flow run {run.id} (of backfill {backfill_id})"):
                    cancel_held_run(run.id, expected_holder=BACKFILL_HOLD,
                                    message="not started: its deployment was deleted",
                                    store=store, queue=queue, metrics=metrics, now=now)
            continue
        for run in runs[:room]:
            with one(f"flow run {run.id} (of backfill {backfill_id})"):
                released += release_held_run(
                    run.id, expected_holder=BACKFILL_HOLD,
                    message=f"started by backfill {backfill_id}",
                    store=store, queue=queue, metrics=metrics, now=now,
                )
    return released


def _room(runs: list[FlowRun], backfill_id: str, released_unclaimed: int, *,
          store: RunStore) -> int | None:
    """How many more runs of the backfill may start now; None if its deployment is gone."""
    deployment_id = runs[0].deployment_id
    if deployment_id is None:
        return None
    try:
        deployment = store.get_deployment(deployment_id)
    except NotFound:
        return None
    active = _active_runs(store, deployment_id)
    max_active = hold_detail(runs[0], "max_active")
    room = len(runs)
    if max_active is not None:
        tag = backfill_tag(backfill_id)
        in_flight = released_unclaimed + sum(1 for run in active if tag in run.tags)
        room = min(room, _count(max_active, default=room) - in_flight)
    if deployment.concurrency_limit is not None:
        room = min(room, deployment.concurrency_limit - len(active) - released_unclaimed)
    return max(room, 0)


def _count(value: object, *, default: int) -> int:
    """A count stored in a hold's details (JSON: anything), or `default` if it is none."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default
    return default if number != number else int(max(-1e9, min(1e9, number)))


def _active_runs(store: RunStore, deployment_id: str) -> list[FlowRun]:
    runs: list[FlowRun] = []
    cursor: str | None = None
    while True:
        page = store.list_flow_runs(
            FlowRunFilter(deployment_id=deployment_id, state_types=ACTIVE_STATE_TYPES),
            limit=MAX_PAGE_LIMIT, cursor=cursor,
        )
        # A Suspended run (PAUSED) holds no slot and no attempt: it leaves room to others.
        runs.extend(run for run in page.items if not orchestration.is_suspended(run))
        cursor = page.next_cursor
        if cursor is None:
            return runs


class _Backfill:
    """Starting the runs of one backfill, one time at a time."""

    def __init__(self, deployment: Deployment, backfill_id: str, max_active: int | None,
                 created_by: str | None, store: RunStore, queue: RunQueue, metrics: Metrics,
                 now: datetime) -> None:
        self.deployment, self.backfill_id = deployment, backfill_id
        self.tag = backfill_tag(backfill_id)
        self.hold = backfill_hold(backfill_id, max_active)
        self.created_by = created_by or BACKFILL_ACTOR
        self.store, self.queue, self.metrics, self.now = store, queue, metrics, now

    def start_slot(self, slot: datetime, key: str, parameters: dict[str, object],
                   reprocess: Reprocess, result: BackfillResult) -> str | None:
        """Create or reprocess the run of one time; returns the id of the run it started."""
        run_id = slot_run_id(self.deployment.id, key, slot)
        run, created = self.create(run_id, slot, parameters, extra_tags=[])
        if created:
            result.created += 1
            return run_id
        if self.tag in run.tags or not run.state.is_terminal or reprocess == "none":
            result.existing += 1
            return None
        if run.state.type in _RETRYABLE:
            if self.retry_held(run_id):
                result.reprocessed += 1
                return run_id
            result.existing += 1
            return None
        if reprocess == "all":
            rerun_id = uuid.uuid5(SLOT_ID_NAMESPACE, f"{run_id}/rerun/{self.backfill_id}").hex
            _, created = self.create(rerun_id, slot, parameters, extra_tags=[f"rerun-of:{run_id}"])
            result.reprocessed += int(created)
            return rerun_id if created else None
        result.existing += 1
        return None

    def create(self, run_id: str, slot: datetime, parameters: dict[str, object], *,
               extra_tags: list[str]) -> tuple[FlowRun, bool]:
        state = new_state(StateType.SCHEDULED, "Scheduled", f"backfill {self.backfill_id}",
                          scheduled_time=slot, details=self.hold)
        request = FlowRunCreate(
            id=run_id, flow_name=self.deployment.flow_name, deployment_id=self.deployment.id,
            parameters=dict(parameters), tags=[self.tag, *extra_tags], scheduled_at=slot,
            state=state,
        )
        return create_flow_run_once(request, store=self.store, queue=self.queue,
                                    metrics=self.metrics, created_by=self.created_by, now=self.now)

    def retry_held(self, run_id: str) -> bool:
        """A new attempt of a Failed/Crashed run, held for the backfill's feeding."""

        def decide(run: FlowRun) -> Transition:
            outcome = orchestration.retry(run, now=self.now,
                                          message=f"reprocessed by backfill {self.backfill_id}")
            if not outcome.accepted:
                return outcome
            others = [t for t in run.tags if not t.startswith("backfill:")]
            held_state = outcome.run.state.model_copy(update={"details": self.hold})
            held = outcome.run.model_copy(update={
                "state": held_state, "tags": [*others[: MAX_TAGS - 1], self.tag],
            })
            return replace(outcome, run=held)

        outcome = apply_server_transition(run_id, decide, store=self.store, queue=self.queue,
                                          metrics=self.metrics, now=self.now)
        return outcome.accepted and outcome.write


def _slots(deployment: Deployment, start: datetime, end: datetime
           ) -> list[tuple[datetime, str, dict[str, object]]]:
    """(time, schedule key, schedule parameters) of every active schedule's time in the
    window, in time order."""
    slots: list[tuple[datetime, str, dict[str, object]]] = []
    for schedule in deployment.schedules:
        if not schedule.active:
            continue
        key = schedule_key(schedule)
        for when in times_between(schedule, start, end, limit=MAX_BACKFILL_RUNS + 1):
            slots.append((when, key, dict(schedule.parameters)))
        if len(slots) > MAX_BACKFILL_RUNS:
            raise ValidationError(
                f"the window holds more than {MAX_BACKFILL_RUNS} scheduled times; backfill it "
                "in smaller windows",
                details=[{"loc": ["end"], "msg": f"more than {MAX_BACKFILL_RUNS} runs"}],
            )
    return sorted(slots, key=lambda item: item[0])


def _check_request(deployment: Deployment, start: datetime, end: datetime, now: datetime,
                   reprocess: str, max_active: int | None, backfill_id: str | None) -> None:
    def refuse(loc: str, msg: str, message: str) -> None:
        raise ValidationError(message, details=[{"loc": [loc], "msg": msg}])

    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            refuse(name, "needs a time zone",
                   f"{name} {value.isoformat()} has no time zone; give one (e.g. "
                   f"{value.isoformat()}+00:00)")
    if start >= end:
        refuse("end", "must be after start", f"end {end.isoformat()} is not after start "
                                             f"{start.isoformat()}")
    if end > now:
        refuse("end", "is in the future",
               f"end {end.isoformat()} is in the future; the scheduler creates future runs, a "
               "backfill covers past times only (use an end at or before now)")
    if reprocess not in REPROCESS_CHOICES:
        refuse("reprocess", "none, failed or all",
               f"reprocess must be one of none, failed, all; got {reprocess!r}")
    if max_active is not None and max_active < 1:
        refuse("max_active", "at least 1", f"max_active must be at least 1, got {max_active}")
    if backfill_id is not None and not _BACKFILL_ID.match(backfill_id):
        refuse("backfill_id", "1-64 letters, digits, - or _",
               f"backfill_id {backfill_id!r} must be 1-64 letters, digits, '-' or '_'")
    if not any(schedule.active for schedule in deployment.schedules):
        refuse("deployment", "has no active schedule",
               f"deployment {deployment.flow_name}/{deployment.name} has no active schedule; "
               "a backfill creates the runs its schedules would have made")
    for index, schedule in enumerate(deployment.schedules):
        # Checked up front so that a schedule whose runs would be refused writes nothing at all;
        # a stored schedule that no longer validates (written before today's rules) too.
        if schedule.active:
            try:
                validate_schedule(schedule, field=f"schedules[{index}]")
            except ValidationError as exc:
                raise ValidationError(
                    f"deployment {deployment.flow_name}/{deployment.name}: {exc.message}; "
                    "update the deployment's schedules before a backfill", details=exc.details,
                ) from None
            parameters = {**deployment.parameters, **schedule.parameters}
            check_parameters(parameters)
            validate_parameters(parameters, deployment.parameter_schema)

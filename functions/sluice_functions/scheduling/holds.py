"""Held runs: Scheduled runs the control plane keeps back until it decides to start them.

A run is held while its state's `details` carry `held_by` (`service.queueing.HELD_BY`): no queue
message is sent for it (`enqueue_due_runs` and every transition skip it), no worker can claim it,
and the monitor does not call it Late. Two holders exist:

* `"schedule"`: the scheduler pre-creates each schedule's upcoming runs held, so users see them
  ahead, and releases each one a tick before it is due. Until then the scheduler can still skip
  it (catch-up policy after missed ticks or a pause), cancel it (its schedule was removed or
  changed, its deployment deleted) or refresh it (the deployment's parameters or pool changed).
  Pausing a deployment keeps its held runs held; those that come due while it is paused get a
  state message saying so (one write each), and on resume the catch-up policy decides.
* `"backfill"`: a backfill's runs beyond its `max_active`, released as earlier ones finish.
  The hold carries the backfill's id and `max_active`; every run of a backfill carries the tag
  `backfill:<id>`, so the feeder can count the backfill's runs in flight.

Releasing and cancelling go through `service.apply_server_transition`: compare-and-set writes
that re-check the hold, so of two concurrent ticks only one acts on a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sluice.exceptions import Conflict, NotFound
from sluice.models import FlowRun, StateType, TransitionStatus

from .. import orchestration
from ..orchestration import Mover, Transition
from ..ports import Metrics, RunQueue, RunStore
from ..service.lifecycle import apply_server_transition
from ..service.queueing import HELD_BY, is_held

SCHEDULE_HOLD = "schedule"
BACKFILL_HOLD = "backfill"
#: Tag of every run the scheduler creates (as Prefect names them).
AUTO_SCHEDULED_TAG = "auto-scheduled"
BACKFILL_TAG_PREFIX = "backfill:"


def schedule_hold(key: str) -> dict[str, Any]:
    """State details of a pre-created run of the schedule `key`."""
    return {HELD_BY: SCHEDULE_HOLD, "schedule": key}


def backfill_hold(backfill_id: str, max_active: int | None) -> dict[str, Any]:
    """State details of a backfill run waiting for one of the backfill's `max_active` slots."""
    return {HELD_BY: BACKFILL_HOLD, "backfill_id": backfill_id, "max_active": max_active}


def holder(run: FlowRun) -> str | None:
    """Who holds the run ("schedule", "backfill"), or None when it is not held."""
    if not is_held(run):
        return None
    assert run.state.details is not None
    return str(run.state.details[HELD_BY])


def hold_detail(run: FlowRun, name: str) -> Any:
    """One field of the run's hold (e.g. "schedule", "backfill_id", "max_active")."""
    return (run.state.details or {}).get(name)


def backfill_tag(backfill_id: str) -> str:
    return f"{BACKFILL_TAG_PREFIX}{backfill_id}"


def backfill_id_of(run: FlowRun) -> str | None:
    """The id of the backfill the run belongs to (from its tag), or None."""
    return next(
        (tag[len(BACKFILL_TAG_PREFIX):] for tag in run.tags if tag.startswith(BACKFILL_TAG_PREFIX)),
        None,
    )


def release_held_run(
    flow_run_id: str,
    *,
    expected_holder: str,
    message: str | None,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime,
    refresh: Callable[[FlowRun], FlowRun] | None = None,
) -> bool:
    """Release a held run: same state name and time, hold removed, queue message sent (with
    the delay that makes it appear at its time). `refresh` may update the run's settings in the
    same write. Returns False when the run was no longer held by `expected_holder`."""

    def decide(run: FlowRun) -> Transition:
        if holder(run) != expected_holder:
            return Transition(TransitionStatus.REJECT, run, reason="no longer held")
        released = run.state.model_copy(
            update={"details": None, "timestamp": now, "message": message}
        )
        outcome = orchestration.propose_state(run, released, now=now, mover=Mover.SERVER)
        if outcome.accepted and refresh is not None:
            outcome = replace(outcome, run=refresh(outcome.run))
        return outcome

    return _applied(flow_run_id, decide, store=store, queue=queue, metrics=metrics, now=now)


def cancel_held_run(
    flow_run_id: str,
    *,
    expected_holder: str,
    message: str,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime,
) -> bool:
    """Cancel a run that is still held by `expected_holder` (it never started, so it goes to
    Cancelled at once). Returns False when it was no longer held."""

    def decide(run: FlowRun) -> Transition:
        if holder(run) != expected_holder:
            return Transition(TransitionStatus.REJECT, run, reason="no longer held")
        return orchestration.cancel(run, now=now, message=message)

    return _applied(flow_run_id, decide, store=store, queue=queue, metrics=metrics, now=now)


def note_held_run(run: FlowRun, *, expected_holder: str, message: str, store: RunStore,
                  now: datetime) -> bool:
    """Say in a held run's state message why it still waits: same state, same hold, no history
    entry (as a waiting run's reason, `service.concurrency`); a compare-and-set write, only when
    the message changes. Returns whether it wrote."""
    if holder(run) != expected_holder or run.state.message == message:
        return False
    noted = run.state.model_copy(update={"message": message})
    try:
        store.update_flow_run(run.model_copy(update={"state": noted, "updated": now}))
    except (Conflict, NotFound):
        return False  # the tick or a user moved it meanwhile: the next tick looks again
    return True


def _applied(
    flow_run_id: str,
    decide: Callable[[FlowRun], Transition],
    *,
    store: RunStore,
    queue: RunQueue,
    metrics: Metrics,
    now: datetime,
) -> bool:
    try:
        outcome = apply_server_transition(
            flow_run_id, decide, store=store, queue=queue, metrics=metrics, now=now
        )
    except (Conflict, NotFound):
        return False  # the run kept changing or vanished: another writer decided for it
    return outcome.accepted and outcome.write and outcome.run.state.type in (
        StateType.SCHEDULED, StateType.CANCELLED
    )

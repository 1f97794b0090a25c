"""Sending a run's queue message so that it appears when the run is due."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from sluice.exceptions import SluiceError
from sluice.models import FlowRun, RunMessage

from ..ports import MAX_DELAY_SECONDS, Metrics, RunQueue, RunStore
from ..timemath import shift

logger = logging.getLogger(__name__)

#: How far ahead a run is enqueued: SQS holds a message back at most `MAX_DELAY_SECONDS`
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html);
#: runs due later are enqueued by a later scheduler tick.
ENQUEUE_HORIZON = timedelta(seconds=MAX_DELAY_SECONDS)
#: Key of `State.details` that marks a Scheduled run as held back by the control plane: the
#: scheduler's pre-created runs (released shortly before they are due, or skipped by the
#: catch-up policy) and a backfill's runs beyond its `max_active` (released as earlier ones
#: finish). The value names the holder ("schedule", "backfill"); see `sluice_functions.scheduling`.
HELD_BY = "held_by"


def is_held(run: FlowRun) -> bool:
    """Whether the run waits in Scheduled for the scheduler to release it: no queue message may
    be sent for it and no worker may claim it until then."""
    details = run.state.details
    held = bool(details and details.get(HELD_BY))
    return held and run.state.is_scheduled() and run.lease is None


def due_for_enqueue(run: FlowRun, now: datetime) -> bool:
    """Whether the run's message can be sent now (it is due within the SQS delay limit and not
    held back by the scheduler)."""
    if is_held(run):
        return False
    return run.scheduled_at is None or run.scheduled_at <= shift(now, ENQUEUE_HORIZON)


def delay_seconds(run: FlowRun, now: datetime) -> int:
    """Seconds until the run is due, rounded down, within 0..MAX_DELAY_SECONDS.

    SQS delays are whole seconds, so the message appears up to a second early; it carries
    `scheduled_at` and the worker waits out the rest, which starts the run on its second
    instead of up to a second late."""
    if run.scheduled_at is None:
        return 0
    wait = (run.scheduled_at - now).total_seconds()
    return max(0, min(MAX_DELAY_SECONDS, math.floor(wait)))


def run_message(run: FlowRun) -> str:
    """The queue message body for the run's next attempt."""
    assert run.pool is not None
    return RunMessage(flow_run_id=run.id, pool=run.pool, attempt=run.run_count,
                      scheduled_at=run.scheduled_at).model_dump_json()


def mark_enqueued(run: FlowRun, now: datetime) -> FlowRun:
    """The run as it is written before its message is sent (one write instead of two)."""
    return run.model_copy(update={"enqueued_at": now})


def send_run_message(
    run: FlowRun, *, store: RunStore, queue: RunQueue, metrics: Metrics, now: datetime
) -> bool:
    """Send the message of a run that was stored with `enqueued_at` set.

    The run is already durable, so a failed send must not fail the request: the run's
    `enqueued_at` is cleared (best effort) and the scheduler tick sends it later. Returns whether
    the message was sent.
    """
    assert run.pool is not None
    try:
        queue.send(run.pool, run_message(run), delay_seconds=delay_seconds(run, now))
    except (SluiceError, OSError) as exc:
        logger.warning("enqueue of flow run %s failed, the scheduler will retry: %r", run.id, exc)
        metrics.count("EnqueueFailed", dimensions={"pool": run.pool})
        try:
            store.update_flow_run(run.model_copy(update={"enqueued_at": None}))
        except SluiceError:
            pass  # the run moved on or the store is down; the scheduler's resend covers it
        return False
    metrics.count("FlowRunsEnqueued", dimensions={"pool": run.pool})
    return True

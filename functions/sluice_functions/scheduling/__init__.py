"""Schedules: when runs are due (pure math in `schedules`), the scheduler tick (`tick`), held
runs (`holds`) and backfills (`backfill`)."""

from .backfill import MAX_BACKFILL_RUNS, BackfillResult, backfill_deployment, feed_backfills
from .holds import AUTO_SCHEDULED_TAG, backfill_tag
from .schedules import (
    is_schedule_time,
    iter_times,
    next_times,
    previous_times,
    schedule_key,
    slot_run_id,
    times_between,
    upcoming_times,
    validate_schedule,
    validate_schedules,
)
from .tick import (
    DEFAULT_TICK_INTERVAL,
    CatchUpPolicy,
    SchedulerTickResult,
    schedule_deployments,
)

__all__ = [
    "validate_schedule", "validate_schedules", "next_times", "previous_times", "iter_times",
    "times_between", "upcoming_times", "is_schedule_time", "schedule_key", "slot_run_id",
    "schedule_deployments", "SchedulerTickResult", "CatchUpPolicy", "DEFAULT_TICK_INTERVAL",
    "backfill_deployment", "feed_backfills", "BackfillResult", "MAX_BACKFILL_RUNS",
    "AUTO_SCHEDULED_TAG", "backfill_tag",
]

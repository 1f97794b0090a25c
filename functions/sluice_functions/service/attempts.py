"""An attempt's lease terms and renewals, and what happens to the rest of an attempt when it
ends: its task runs that were still open."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sluice.exceptions import Conflict, SluiceError
from sluice.models import MAX_PAGE_LIMIT, FlowRun, StateType, TaskRun, new_state

from ..orchestration import LeasePolicy, holds_live_attempt
from ..ports import Metrics, RunStore

logger = logging.getLogger(__name__)

#: Most task runs of one attempt closed when it ends; beyond that they are left (and logged).
MAX_TASK_RUNS_CLOSED = 10_000
#: Compare-and-set rounds of a renewal before giving up with 409.
MAX_RENEW_ATTEMPTS = 5
#: How long the first lease of a fargate pool's claim lasts: ECS takes a minute or more to
#: provision a Fargate task (ENI, image pull) before its `sluice worker run-one` heartbeats.
FARGATE_STARTUP_GRACE_SECONDS = 300.0


def claim_leases(run: FlowRun, *, store: RunStore, leases: LeasePolicy) -> LeasePolicy:
    """The terms of a claim's first lease on `run`: a fargate pool's claim (by its dispatcher)
    lasts `FARGATE_STARTUP_GRACE_SECONDS`, to cover starting the task; the task's first
    heartbeat renews it on the normal terms (`leases`). Reads the pool (a claim's one read
    of it, shared with its other rules: `request_reads`)."""
    if run.pool is None:
        return leases
    try:
        kind = store.get_pool(run.pool).type
    except SluiceError:  # no record, or unreadable: a worker pool's terms
        return leases
    if kind != "fargate" or leases.seconds >= FARGATE_STARTUP_GRACE_SECONDS:
        return leases
    return LeasePolicy.of_seconds(FARGATE_STARTUP_GRACE_SECONDS)


def lease_terms(leases: LeasePolicy, renewed_at: datetime) -> dict[str, Any]:
    """The `LeaseTerms` fields of an answer that renewed a lease at `renewed_at`."""
    return {"lease_expires_at": leases.expires_at(renewed_at), "lease_seconds": leases.seconds,
            "heartbeat_interval_seconds": leases.heartbeat_interval_seconds}


def renew(run: FlowRun, *, store: RunStore, now: datetime, leases: LeasePolicy) -> FlowRun:
    """Record a renewal of the run's lease at `now` (compare-and-set, re-read on a race); a run
    whose attempt ended or changed meanwhile is returned as it is, unrenewed."""
    lease = run.lease
    for _ in range(MAX_RENEW_ATTEMPTS):
        try:
            return store.update_flow_run(run.model_copy(update={
                "heartbeat_at": now, "lease_expires_at": leases.expires_at(now)}))
        except Conflict:
            run = store.get_flow_run(run.id)
            if not holds_live_attempt(run) or run.lease != lease:
                return run
    raise Conflict(f"flow run {run.id} kept changing while its lease was renewed; try again")


def ended_attempt(before: FlowRun, after: FlowRun) -> bool:
    """Whether the write `before` -> `after` ended the attempt that held `before` any other way
    than completing: it crashed, failed, was cancelled, or lost its lease to a retry."""
    if before.lease is None or before.state.is_terminal:
        return False
    if after.state.type is StateType.COMPLETED:
        return False
    return after.state.is_terminal or after.lease != before.lease


def close_open_task_runs(run: FlowRun, *, store: RunStore, metrics: Metrics,
                         now: datetime) -> int:
    """Task runs of `run` still Pending/Running/Scheduled end like their flow run (Crashed or
    Cancelled): a killed attempt never reports them, and nothing may stay Running inside a run
    that ended. Best effort: the transition is already written, so a failure here is logged and
    counted (`TaskRunCloseFailed`), never raised. Returns how many were closed."""
    try:
        return _close_open_task_runs(run, store=store, now=now)
    except Exception:
        logger.exception("closing the open task runs of flow run %s failed", run.id)
        metrics.count("TaskRunCloseFailed")
        return 0


def _close_open_task_runs(run: FlowRun, *, store: RunStore, now: datetime) -> int:
    # An operator stopped the attempt (cancel, or suspend: PAUSED without a lease): Cancelled.
    closing_type = (StateType.CANCELLED
                    if run.state.type in (StateType.CANCELLED, StateType.PAUSED)
                    else StateType.CRASHED)
    message = f"the flow run's attempt ended ({run.state.name}) while this task run was open"
    closed: list[TaskRun] = []
    cursor: str | None = None
    seen = 0
    while seen < MAX_TASK_RUNS_CLOSED:
        page = store.list_task_runs(run.id, limit=MAX_PAGE_LIMIT, cursor=cursor)
        seen += len(page.items)
        for task_run in page.items:
            if task_run.state.is_terminal:
                continue
            state = new_state(closing_type, message=message).model_copy(
                update={"timestamp": now})
            closed.append(task_run.model_copy(update={
                "state": state, "end_time": now, "version": task_run.version + 1}))
        cursor = page.next_cursor
        if cursor is None:
            break
    else:
        logger.warning("flow run %s has over %d task runs; only those were closed", run.id,
                       MAX_TASK_RUNS_CLOSED)
    if closed:
        store.upsert_task_runs(closed)
    return len(closed)

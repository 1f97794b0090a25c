"""What happens to the rest of an attempt when it ends: its task runs that were still open."""

from __future__ import annotations

import logging
from datetime import datetime

from sluice.models import MAX_PAGE_LIMIT, FlowRun, StateType, TaskRun, new_state

from ..ports import RunStore

logger = logging.getLogger(__name__)

#: Most task runs of one attempt closed when it ends; beyond that they are left (and logged).
MAX_TASK_RUNS_CLOSED = 10_000


def ended_attempt(before: FlowRun, after: FlowRun) -> bool:
    """Whether the write `before` -> `after` ended the attempt that held `before` any other way
    than completing: it crashed, failed, was cancelled, or lost its lease to a retry."""
    if before.lease is None or before.state.is_terminal:
        return False
    if after.state.type is StateType.COMPLETED:
        return False
    return after.state.is_terminal or after.lease != before.lease


def close_open_task_runs(run: FlowRun, *, store: RunStore, now: datetime) -> int:
    """Task runs of `run` still Pending/Running/Scheduled end like their flow run (Crashed or
    Cancelled): a killed attempt never reports them, and nothing may stay Running inside a run
    that ended. Returns how many were closed."""
    closing_type = (StateType.CANCELLED if run.state.type is StateType.CANCELLED
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

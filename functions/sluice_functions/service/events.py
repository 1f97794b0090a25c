"""Use cases for what a flow run reports in batches (task runs, log lines) and their reads."""

from __future__ import annotations

from datetime import datetime

from sluice.exceptions import PayloadTooLarge, ValidationError
from sluice.models import (
    MAX_EVENTS_BATCH_BYTES,
    MAX_EVENTS_PER_BATCH,
    MAX_PAGE_LIMIT,
    EventsAccepted,
    EventsBatch,
    FlowRun,
    LogRecord,
    Page,
    SetStateRequest,
    TaskRun,
)

from ..orchestration import check_lease
from ..ports import LogSink, Metrics, ReceivedJson, RunQueue, RunStore
from .limits import check_log_messages, check_page_limit, check_state, check_tags


def record_events(
    flow_run_id: str,
    batch: EventsBatch,
    *,
    store: RunStore,
    logs: LogSink,
    metrics: Metrics,
    queue: RunQueue | None = None,
    now: datetime | None = None,
    body_bytes: int | None = None,
    received: ReceivedJson | None = None,
) -> EventsAccepted:
    """Store a batch of task-run records and log lines of one flow run, then apply the state
    it carries, if any (`lifecycle.set_state`'s rules, lease and transition id: the records
    always land before the run's final state). A batch with a state needs `queue`.

    Idempotent by record id: a replayed batch changes nothing, and a task-run record only
    replaces a stored one with a lower `version`. The whole batch is checked before anything is
    written. Raises `NotFound` (unknown run), `ValidationError` (a record of another run),
    `PayloadTooLarge` (too many records, too many bytes, an oversized message), `StaleLease`
    (409: the batch carries no lease, or that of an attempt older than the last one). From the
    attempt that ended last, log lines are still taken (a process's last output lands after its
    final state) and task runs only once they ended. `body_bytes`: the size of the request
    that carried the batch (the route knows it), checked against the batch limit instead of
    serializing the batch again. `received`: the records' JSON as the request carried it
    (`ReceivedJson`), handed to the store.
    """
    _check_batch(flow_run_id, batch, body_bytes)
    run = store.get_flow_run(flow_run_id)
    task_runs, finished = batch.task_runs, batch.finished_task_runs
    if _from_last_attempt(run, batch.lease):
        # The attempt is over (its output lands after its final state): its lines are kept,
        # and of its task runs only those that ended; an open one would show a step still
        # running inside an attempt that is over (its open task runs were closed with it).
        sent = len(task_runs) + len(finished)
        task_runs = [t for t in task_runs if t.state.is_terminal]
        finished = [t for t in finished if t.state.is_terminal]
        if len(task_runs) + len(finished) < sent:
            metrics.count("LateTaskRunsDropped", sent - len(task_runs) - len(finished))
    else:
        check_lease(run, batch.lease)
    # Passed only when there is some: a store written before takes the records alone.
    texts = {"received": received} if received is not None else {}
    if task_runs:
        store.upsert_task_runs(task_runs, **texts)
    if finished:  # first reported and final: the store may pack them (issue 20)
        store.add_finished_task_runs(finished, **texts)
    if batch.logs:
        logs.append(flow_run_id, batch.logs)
    task_runs = [*task_runs, *finished]
    metrics.count("TaskRunRecords", len(task_runs))
    metrics.count("LogRecords", len(batch.logs))
    transition = None
    if batch.state is not None:
        assert batch.transition_id is not None  # the model requires it with a state
        if queue is None:
            raise ValidationError("this route does not take a state with a batch: send it to "
                                  "the run's state route")
        from .lifecycle import set_state  # lifecycle imports much; only batches with a state

        # Decided on the run read above (the task-run records are items of their own, so
        # they leave its version alone): the state's compare-and-set write is the guard.
        transition = set_state(flow_run_id, SetStateRequest(
            state=batch.state, transition_id=batch.transition_id, lease=batch.lease),
            store=store, queue=queue, metrics=metrics, now=now, current=run)
    return EventsAccepted(task_runs=len(task_runs), logs=len(batch.logs), transition=transition)


def _from_last_attempt(run: FlowRun, lease: str | None) -> bool:
    """Whether `lease` is that of the run's attempt that ended last (the run ended with it, or
    it went back to the queue for a retry)."""
    if lease is None:
        return False
    if lease == run.lease:
        return run.state.is_terminal
    return lease == run.ended_lease


def list_task_runs(
    flow_run_id: str,
    *,
    store: RunStore,
    limit: int = MAX_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[TaskRun]:
    """Task runs of a flow run in creation order. Raises `NotFound` for an unknown run."""
    check_page_limit(limit)
    store.get_flow_run(flow_run_id)
    return store.list_task_runs(flow_run_id, limit=limit, cursor=cursor)


def read_logs(
    flow_run_id: str,
    *,
    store: RunStore,
    logs: LogSink,
    limit: int = MAX_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[LogRecord]:
    """A page of a run's log lines in time order. `next_cursor` is always set so `--follow` can
    keep polling; an empty page means caught up. Raises `NotFound` for an unknown run."""
    check_page_limit(limit)
    store.get_flow_run(flow_run_id)
    return logs.read(flow_run_id, cursor=cursor, limit=limit)


def _check_batch(flow_run_id: str, batch: EventsBatch, body_bytes: int | None) -> None:
    count = len(batch.task_runs) + len(batch.finished_task_runs) + len(batch.logs)
    if count > MAX_EVENTS_PER_BATCH:
        raise PayloadTooLarge(
            f"an events batch holds at most {MAX_EVENTS_PER_BATCH} records, got {count}",
            details={"field": "batch", "limit": MAX_EVENTS_PER_BATCH},
        )
    size = body_bytes if body_bytes is not None else len(batch.model_dump_json().encode())
    if size > MAX_EVENTS_BATCH_BYTES:
        raise PayloadTooLarge(
            f"an events batch is at most {MAX_EVENTS_BATCH_BYTES} bytes, got {size}",
            details={"field": "batch", "limit": MAX_EVENTS_BATCH_BYTES},
        )
    for name, records in (("task_runs", batch.task_runs),
                          ("finished_task_runs", batch.finished_task_runs)):
        for index, task_run in enumerate(records):
            state = task_run.state
            # The usual record (this run, no tags, no message, no details) passes every check
            # below: it is not given their field names, built per record (~0.5 us each).
            if (task_run.flow_run_id == flow_run_id and not task_run.tags
                    and not state.message and state.details is None):
                continue
            _check_belongs(flow_run_id, task_run.flow_run_id, f"{name}[{index}]")
            check_state(state, field=f"{name}[{index}].state")
            check_tags(task_run.tags, field=f"{name}[{index}].tags")
    for index, record in enumerate(batch.logs):
        _check_belongs(flow_run_id, record.flow_run_id, f"logs[{index}]")
    check_log_messages(record.message for record in batch.logs)
    if batch.state is not None:  # checked before any record is written: no partial write
        check_state(batch.state, field="state")


def _check_belongs(flow_run_id: str, record_run_id: str, field: str) -> None:
    if record_run_id != flow_run_id:
        raise ValidationError(
            f"{field} belongs to flow run {record_run_id!r}, not {flow_run_id!r}",
            details=[{"loc": [field, "flow_run_id"], "msg": "must be the run in the path"}],
        )

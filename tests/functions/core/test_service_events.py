"""Task-run and log batches: idempotent by record id, checked whole before any write."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core_fakes import NOW
from sluice.exceptions import NotFound, PayloadTooLarge, ValidationError
from sluice.models import (
    MAX_EVENTS_PER_BATCH,
    MAX_LOG_MESSAGE_CHARS,
    Completed,
    EventsBatch,
    FlowRunCreate,
    LogRecord,
    Pending,
    Running,
    TaskRun,
)
from sluice_functions import service


#: The lease of the run's creator (a script run holds its run from its creation).
LEASE = "script-lease-0123456789"


@pytest.fixture
def run(ports):
    return service.create_flow_run(
        FlowRunCreate(flow_name="adhoc", state=Pending(), lease=LEASE), store=ports.store,
        queue=ports.queue, metrics=ports.metrics, now=NOW)


def task_run(run_id, n, *, version=1, state=None, flow_run_id=None):
    return TaskRun(id=f"t{n}", flow_run_id=flow_run_id or run_id, task_name="extract",
                   name=f"extract-{n}", state=state or Running(), version=version)


def log(run_id, n, *, seconds=0, message="hello", flow_run_id=None):
    return LogRecord(id=f"l{n}", flow_run_id=flow_run_id or run_id, message=message,
                     timestamp=NOW + timedelta(seconds=seconds))


def record(ports, run_id, batch):
    if batch.lease is None:  # sent by the run's holder
        batch = batch.model_copy(update={"lease": LEASE})
    return service.record_events(run_id, batch, store=ports.store, logs=ports.logs,
                                 metrics=ports.metrics)


def test_a_batch_stores_task_runs_and_logs(ports, run):
    accepted = record(ports, run.id, EventsBatch(task_runs=[task_run(run.id, 1)],
                                                 logs=[log(run.id, 1), log(run.id, 2)]))
    assert (accepted.task_runs, accepted.logs) == (1, 2)
    page = service.list_task_runs(run.id, store=ports.store)
    assert [t.name for t in page.items] == ["extract-1"]


def test_a_replayed_batch_changes_nothing(ports, run):
    batch = EventsBatch(task_runs=[task_run(run.id, 1)], logs=[log(run.id, 1)])
    record(ports, run.id, batch)
    record(ports, run.id, batch)
    logs = service.read_logs(run.id, store=ports.store, logs=ports.logs)
    assert [r.id for r in logs.items] == ["l1"]
    assert len(service.list_task_runs(run.id, store=ports.store).items) == 1


def test_a_late_older_task_run_record_never_overwrites_a_newer_one(ports, run):
    record(ports, run.id, EventsBatch(task_runs=[task_run(run.id, 1, version=2, state=Completed())]))
    record(ports, run.id, EventsBatch(task_runs=[task_run(run.id, 1, version=1)]))
    [stored] = service.list_task_runs(run.id, store=ports.store).items
    assert stored.state.name == "Completed"


def test_logs_are_read_in_time_order_and_followed_with_the_cursor(ports, run):
    record(ports, run.id, EventsBatch(logs=[log(run.id, 2, seconds=2), log(run.id, 1, seconds=1)]))
    first = service.read_logs(run.id, store=ports.store, logs=ports.logs)
    assert [r.id for r in first.items] == ["l1", "l2"] and first.next_cursor
    caught_up = service.read_logs(run.id, store=ports.store, logs=ports.logs,
                                  cursor=first.next_cursor)
    assert caught_up.items == []
    record(ports, run.id, EventsBatch(logs=[log(run.id, 3, seconds=3)]))
    later = service.read_logs(run.id, store=ports.store, logs=ports.logs,
                              cursor=caught_up.next_cursor)
    assert [r.id for r in later.items] == ["l3"]


class TestRefusedBatchesWriteNothing:
    def assert_nothing_written(self, ports, run):
        assert ports.store.task_runs == {} and ports.logs.records.get(run.id, []) == []

    def test_a_record_of_another_run(self, ports, run):
        batch = EventsBatch(task_runs=[task_run(run.id, 1)],
                            logs=[log(run.id, 1, flow_run_id="other")])
        with pytest.raises(ValidationError, match=r"logs\[0\]"):
            record(ports, run.id, batch)
        self.assert_nothing_written(ports, run)

    def test_too_many_records(self, ports, run):
        batch = EventsBatch(logs=[log(run.id, n) for n in range(MAX_EVENTS_PER_BATCH + 1)])
        with pytest.raises(PayloadTooLarge, match="at most"):
            record(ports, run.id, batch)
        self.assert_nothing_written(ports, run)

    def test_an_oversized_log_line(self, ports, run):
        line = LogRecord.model_construct(id="big", flow_run_id=run.id, timestamp=NOW,
                                         message="x" * (MAX_LOG_MESSAGE_CHARS + 1))
        batch = EventsBatch(task_runs=[task_run(run.id, 1)], logs=[log(run.id, 1), line])
        with pytest.raises(PayloadTooLarge, match=r"logs\[1\]"):
            record(ports, run.id, batch)
        self.assert_nothing_written(ports, run)

    def test_an_unknown_run(self, ports, run):
        with pytest.raises(NotFound):
            record(ports, "nope", EventsBatch(logs=[log("nope", 1)]))
        self.assert_nothing_written(ports, run)


@pytest.mark.parametrize("read", ["task_runs", "logs"])
def test_reading_events_of_an_unknown_run_is_not_found(ports, read):
    with pytest.raises(NotFound):
        if read == "task_runs":
            service.list_task_runs("nope", store=ports.store)
        else:
            service.read_logs("nope", store=ports.store, logs=ports.logs)

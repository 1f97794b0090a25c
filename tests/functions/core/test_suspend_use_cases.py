"""Suspend and resume through the service on the in-memory fakes: what the worker and the flow
process of a suspended attempt see, the queue message of a resumed run, and the suspended
attempt's open task runs and late output."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from core_fakes import NOW
from sluice.exceptions import Conflict, StaleLease
from sluice.models import (
    ClaimRequest,
    EventsBatch,
    HeartbeatRequest,
    LogRecord,
    Running,
    SetStateRequest,
    StateType,
    TaskRun,
)
from sluice_functions import service
from sluice_functions.service.suspension import resume_flow_run, suspend_flow_run


def _claim(ports, run_id, *, worker="w1", attempt=None, now=NOW):
    return service.claim_flow_run(run_id, ClaimRequest(worker=worker, attempt=attempt),
                                  store=ports.store, metrics=ports.metrics, now=now)


def _suspend(ports, run_id, now=NOW):
    return suspend_flow_run(run_id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
                            now=now)


def _resume(ports, run_id, now=NOW):
    return resume_flow_run(run_id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
                           now=now)


def test_a_pending_run_is_suspended_and_its_worker_is_told_to_stop(ports):
    # Given a run its worker claimed and is preparing
    run = ports.queued_run()
    lease = _claim(ports, run.id).lease
    # When it is suspended
    answer = _suspend(ports, run.id)
    # Then the worker's heartbeat is refused (it stops the run) and so is its claim's message
    assert answer.state.name == "Suspended"
    with pytest.raises(StaleLease):
        service.heartbeat(run.id, HeartbeatRequest(lease=lease), store=ports.store, now=NOW)
    with pytest.raises(Conflict):
        _claim(ports, run.id, worker="w2", attempt=1)


def test_a_resumed_run_gets_a_new_queue_message_and_a_new_attempt(ports):
    # Given a Scheduled run (its first message sent) suspended
    run = ports.queued_run()
    sent_before = len(ports.queue.sent)
    _suspend(ports, run.id)
    assert len(ports.queue.sent) == sent_before  # suspending sends nothing
    # When it is resumed
    answer = _resume(ports, run.id, now=NOW + timedelta(minutes=5))
    # Then it is Scheduled at that moment and one message for attempt 0 went out
    assert answer.state.type is StateType.SCHEDULED
    assert answer.state.scheduled_time == NOW + timedelta(minutes=5)
    assert len(ports.queue.sent) == sent_before + 1
    pool, body, _ = ports.queue.sent[-1]
    assert pool == "etl" and json.loads(body)["flow_run_id"] == run.id
    assert _claim(ports, run.id, attempt=0, now=NOW + timedelta(minutes=5)).flow_run.run_count \
        == 1


def test_the_suspended_attempts_open_task_runs_are_cancelled_and_its_late_output_kept(ports):
    # Given a Running run with an open task run
    run = ports.queued_run()
    lease = _claim(ports, run.id).lease
    service.set_state(run.id, SetStateRequest(state=Running(), transition_id="t1", lease=lease),
                      store=ports.store, queue=ports.queue, metrics=ports.metrics, now=NOW)
    open_task = TaskRun(id="t1", flow_run_id=run.id, task_name="extract", name="extract-1",
                        state=Running(), version=1)
    service.record_events(run.id, EventsBatch(lease=lease, task_runs=[open_task]),
                          store=ports.store, logs=ports.logs, metrics=ports.metrics)
    # When it is suspended
    _suspend(ports, run.id)
    # Then the open task run ended Cancelled (not Crashed: an operator stopped it)
    closed = ports.store.list_task_runs(run.id, limit=10).items
    assert [t.state.type for t in closed] == [StateType.CANCELLED]
    # and the stopped process's last log lines still land, but no state write does
    line = LogRecord(id="l1", flow_run_id=run.id, message="stopping", timestamp=NOW)
    accepted = service.record_events(run.id, EventsBatch(lease=lease, logs=[line]),
                                     store=ports.store, logs=ports.logs, metrics=ports.metrics)
    assert accepted.logs == 1
    with pytest.raises(StaleLease):
        service.set_state(run.id, SetStateRequest(state=Running(), transition_id="t2",
                                                  lease=lease),
                          store=ports.store, queue=ports.queue, metrics=ports.metrics, now=NOW)


def test_a_suspended_run_is_cancelled_at_once(ports):
    run = ports.queued_run()
    _suspend(ports, run.id)
    answer = service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=NOW)
    assert answer.state.type is StateType.CANCELLED
    assert [s.name for s in service.list_state_history(run.id, store=ports.store)] == [
        "Scheduled", "Suspended", "Cancelled"]

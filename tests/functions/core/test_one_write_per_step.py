"""Issue 20, fewer writes: a claim that starts its run is one store write (Pending kept in the
history), and task runs reported once, finished, go to the store's packed path - with the same
checks as every other record."""

from __future__ import annotations

import pytest

from core_fakes import NOW
from sluice.exceptions import PayloadTooLarge, StaleLease, ValidationError
from sluice.models import (
    MAX_EVENTS_PER_BATCH,
    ClaimRequest,
    Completed,
    EventsBatch,
    Running,
    StateType,
    TaskRun,
)
from sluice_functions import service


def claim(ports, run_id, **fields):
    # A worker with a session (per-worker heartbeats) keeps its own presence: the claim
    # writes the run only.
    request = ClaimRequest(worker="w1", attempt=0, claim_id="m-1", start=True,
                           session="session-1", **fields)
    return service.claim_flow_run(run_id, request, store=ports.store, metrics=ports.metrics,
                                  now=NOW)


def transitions(ports) -> list[str]:
    return [dims["state"] for kind, name, _, dims in ports.metrics.recorded
            if name == "FlowRunTransitions"]


def task(run_id, n, state=None, version=3) -> TaskRun:
    return TaskRun(id=f"t{n}", flow_run_id=run_id, task_name="step", name=f"step-{n}",
                   state=state or Completed(), version=version)


def record(ports, run_id, batch):
    return service.record_events(run_id, batch, store=ports.store, logs=ports.logs,
                                 metrics=ports.metrics, queue=ports.queue, now=NOW)


class TestClaimThatStartsInOneWrite:
    def test_no_limit_means_one_write_with_pending_in_the_history(self, ports):
        # Given a queued run under no concurrency limit
        run = ports.queued_run()
        writes = ports.store.writes
        # When a worker claims it with start
        answer = claim(ports, run.id)
        # Then one write stored Running, with Pending before it in the history and the counts
        assert ports.store.writes == writes + 1
        assert answer.flow_run.state.type is StateType.RUNNING
        assert [s.name for s in service.list_state_history(run.id, store=ports.store)] == [
            "Scheduled", "Pending", "Running"]
        assert transitions(ports)[-2:] == ["PENDING", "RUNNING"]
        assert answer.flow_run.version == run.version + 2

    def test_under_a_limit_the_claim_is_confirmed_before_it_starts(self, ports):
        # Given a run of a deployment with a concurrency limit
        run = ports.queued_run(deployment={"concurrency_limit": 2})
        writes = ports.store.writes
        # When claimed with start, Then Pending is written and confirmed, then Running
        answer = claim(ports, run.id)
        assert answer.flow_run.state.type is StateType.RUNNING
        assert ports.store.writes == writes + 2
        assert [s.name for s in service.list_state_history(run.id, store=ports.store)] == [
            "Scheduled", "Pending", "Running"]


class TestFinishedTaskRuns:
    def test_they_are_stored_counted_and_listed_with_the_others(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        batch = EventsBatch(lease=lease, task_runs=[task(run.id, 0, Running(), version=2)],
                            finished_task_runs=[task(run.id, n) for n in (1, 2)])
        accepted = record(ports, run.id, batch)
        assert accepted.task_runs == 3
        listed = ports.store.list_task_runs(run.id, limit=10).items
        assert [(t.id, t.state.type) for t in listed] == [
            ("t0", StateType.RUNNING), ("t1", StateType.COMPLETED), ("t2", StateType.COMPLETED)]
        assert ports.metrics.total("TaskRunRecords") == 3

    def test_they_pass_the_same_checks(self, ports):
        run, other = ports.queued_run(), ports.queued_run()
        lease = claim(ports, run.id).lease
        with pytest.raises(ValidationError, match=r"finished_task_runs\[0\] belongs to flow run"):
            record(ports, run.id, EventsBatch(lease=lease,
                                              finished_task_runs=[task(other.id, 0)]))
        with pytest.raises(StaleLease):
            record(ports, run.id, EventsBatch(lease="not-the-lease",
                                              finished_task_runs=[task(run.id, 0)]))
        too_many = [task(run.id, n) for n in range(MAX_EVENTS_PER_BATCH // 2 + 1)]
        with pytest.raises(PayloadTooLarge, match="at most"):
            record(ports, run.id, EventsBatch(lease=lease, task_runs=too_many,
                                              finished_task_runs=too_many))
        assert ports.store.list_task_runs(run.id, limit=10).items == []

"""Issue 20, fewer round trips: a claim that starts its run (and brings its deployment), and a
final state that rides with the last events batch - with the same fencing, exactly-one claim
and records-before-final-state guarantees as the separate requests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core_fakes import NOW
from sluice.exceptions import Conflict, PayloadTooLarge, StaleLease, Throttled, ValidationError
from sluice.models import (
    MAX_STATE_MESSAGE_CHARS,
    ClaimRequest,
    Completed,
    EventsBatch,
    LogRecord,
    Running,
    StateType,
    TaskRun,
    TransitionStatus,
)
from sluice_functions import service


def claim(ports, run_id, *, worker="w1", claim_id="m-1", attempt=0, start=True,
          with_deployment=False):
    request = ClaimRequest(worker=worker, attempt=attempt, claim_id=claim_id, start=start,
                           with_deployment=with_deployment)
    return service.claim_flow_run(run_id, request, store=ports.store, metrics=ports.metrics,
                                  now=NOW)


def history(ports, run_id):
    return [s.name for s in service.list_state_history(run_id, store=ports.store)]


def batch(run_id, lease, *, state=None, transition_id=None, task_state=None):
    task = TaskRun(id="t1", flow_run_id=run_id, task_name="step", name="step-0",
                   state=task_state or Completed(), version=2)
    line = LogRecord(id="l1", flow_run_id=run_id, message="done", timestamp=NOW)
    return EventsBatch(task_runs=[task], logs=[line], lease=lease, state=state,
                       transition_id=transition_id)


def record(ports, run_id, events, seconds=5):
    return service.record_events(run_id, events, store=ports.store, logs=ports.logs,
                                 metrics=ports.metrics, queue=ports.queue,
                                 now=NOW + timedelta(seconds=seconds))


class TestClaimThatStarts:
    def test_the_claim_starts_the_run_under_its_new_lease_in_one_request(self, ports):
        # Given a queued run
        run = ports.queued_run()
        # When a worker claims it with start
        answer = claim(ports, run.id)
        # Then the run is Running under the new lease, attempt 1, and the answer says so; its
        # history is the one the separate requests wrote (Pending stays visible)
        stored = ports.store.get_flow_run(run.id)
        assert stored.state.type is StateType.RUNNING and stored.lease == answer.lease
        assert stored.run_count == 1 and stored.start_time == NOW
        assert answer.flow_run.state.type is StateType.RUNNING
        assert history(ports, run.id) == ["Scheduled", "Pending", "Running"]

    def test_without_start_the_claim_is_pending_as_before(self, ports):
        run = ports.queued_run()
        answer = claim(ports, run.id, start=False)
        assert answer.flow_run.state.type is StateType.PENDING

    def test_the_claim_brings_the_deployment_when_asked(self, ports):
        run = ports.queued_run()
        answer = claim(ports, run.id, with_deployment=True)
        assert answer.deployment is not None and answer.deployment.id == run.deployment_id
        assert claim(ports, ports.queued_run().id, claim_id="m-2").deployment is None

    def test_a_repeated_claim_gets_the_same_lease_and_a_second_copy_is_refused(self, ports):
        # Given a run a claim started
        run = ports.queued_run()
        first = claim(ports, run.id)
        # When the same claim is repeated (its answer was lost), Then it gets the same lease
        assert claim(ports, run.id).lease == first.lease
        # And a second copy of the message (another claim id), even on the same worker, or
        # another worker, is refused: exactly one attempt
        with pytest.raises(Conflict):
            claim(ports, run.id, claim_id="m-copy")
        with pytest.raises(Conflict):
            claim(ports, run.id, worker="w2")
        assert ports.store.get_flow_run(run.id).lease == first.lease

    def test_a_stale_lease_cannot_move_a_started_run(self, ports):
        run = ports.queued_run()
        claim(ports, run.id)
        with pytest.raises(StaleLease):
            record(ports, run.id, batch(run.id, "not-the-lease", state=Completed(),
                                        transition_id="t-end"))
        stored = ports.store.get_flow_run(run.id)
        assert stored.state.type is StateType.RUNNING
        assert ports.store.list_task_runs(run.id, limit=10).items == []

    def test_a_run_under_a_concurrency_limit_starts_once_its_slot_is_confirmed(self, ports):
        # Given a deployment limited to one run, one of its runs claimed and started
        first = ports.queued_run(deployment={"concurrency_limit": 1})
        assert claim(ports, first.id).flow_run.state.type is StateType.RUNNING
        # When another run of it is claimed with start, Then it waits (nothing started)
        second = ports.queued_run(deployment={"concurrency_limit": 1})
        with pytest.raises(Throttled):
            claim(ports, second.id, claim_id="m-2")
        assert ports.store.get_flow_run(second.id).state.type is StateType.SCHEDULED

    def test_a_run_cancelled_before_it_starts_is_not_started(self, ports):
        # Given a claimed (Pending) run that is then cancelled
        run = ports.queued_run()
        claim(ports, run.id, start=False)
        service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=NOW)
        # When the same claim is repeated with start, Then the run stays Cancelled
        with pytest.raises(Conflict):
            claim(ports, run.id)
        assert ports.store.get_flow_run(run.id).state.type is StateType.CANCELLED


class TestFinalStateWithTheLastBatch:
    def test_the_records_land_and_then_the_run_ends(self, ports):
        # Given a started run
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        # When its last batch carries Completed
        answer = record(ports, run.id, batch(run.id, lease, state=Completed(),
                                             transition_id="t-end"))
        # Then the records are stored and the run is Completed, in one request
        assert answer.task_runs == 1 and answer.logs == 1
        assert answer.transition.status is TransitionStatus.ACCEPT
        assert answer.transition.state.type is StateType.COMPLETED
        assert [t.id for t in ports.store.list_task_runs(run.id, limit=10).items] == ["t1"]
        assert ports.store.get_flow_run(run.id).state.type is StateType.COMPLETED
        assert history(ports, run.id) == ["Scheduled", "Pending", "Running", "Completed"]

    def test_a_repeated_final_batch_is_a_no_op(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        events = batch(run.id, lease, state=Completed(), transition_id="t-end")
        record(ports, run.id, events)
        again = record(ports, run.id, events, seconds=9)
        assert again.transition.status is TransitionStatus.ACCEPT
        assert again.transition.state.type is StateType.COMPLETED
        assert history(ports, run.id) == ["Scheduled", "Pending", "Running", "Completed"]
        assert ports.store.get_flow_run(run.id).end_time == NOW + timedelta(seconds=5)

    def test_a_refused_state_leaves_the_records_and_says_why(self, ports):
        # Given a run that was cancelled meanwhile (Cancelling)
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=NOW)
        # When its batch proposes Running again, Then the state is refused with the reason
        answer = record(ports, run.id, batch(run.id, lease, state=Running(),
                                             transition_id="t-run", task_state=Running()))
        assert answer.transition.status is not TransitionStatus.ACCEPT
        assert ports.store.get_flow_run(run.id).state.type is StateType.CANCELLING

    def test_an_oversized_state_is_refused_before_any_record_is_written(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        huge = Completed().model_copy(update={"message": "x" * (MAX_STATE_MESSAGE_CHARS + 1)})
        with pytest.raises(PayloadTooLarge):
            record(ports, run.id, batch(run.id, lease, state=huge, transition_id="t-end"))
        assert ports.store.list_task_runs(run.id, limit=10).items == []
        assert ports.store.get_flow_run(run.id).state.type is StateType.RUNNING

    def test_a_state_needs_a_transition_id(self):
        with pytest.raises(ValueError, match="transition_id"):
            EventsBatch(state=Completed(), lease="x")

    def test_a_route_without_the_queue_refuses_a_state(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        with pytest.raises(ValidationError, match="state route"):
            service.record_events(run.id, batch(run.id, lease, state=Completed(),
                                                transition_id="t-end"),
                                  store=ports.store, logs=ports.logs, metrics=ports.metrics)

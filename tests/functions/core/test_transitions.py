"""What an accepted transition does to a run: leases, attempts, retries, cancellation, times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sluice.exceptions import Conflict, StaleLease
from sluice.models import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    FlowRun,
    Running,
    Scheduled,
    State,
    StateType,
    TransitionStatus,
    new_state,
)
from sluice_functions.orchestration import (
    Mover,
    cancel,
    claim,
    holds_live_attempt,
    propose_state,
    retry,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def queued_run(**fields) -> FlowRun:
    values = dict(id="run-1", flow_name="etl", pool="etl", state=Scheduled(scheduled_time=NOW),
                  scheduled_at=NOW, version=1)
    values.update(fields)
    return FlowRun(**values)


def running_run(**fields) -> FlowRun:
    values = dict(state=Running(), lease="L", run_count=1, worker="w1", start_time=NOW)
    values.update(fields)
    return queued_run(**values)


class TestLeases:
    def test_a_write_with_another_attempts_lease_is_refused_as_stale(self):
        with pytest.raises(StaleLease):
            propose_state(running_run(), Completed(), now=NOW, lease="OLD")

    def test_a_write_without_the_lease_of_a_leased_run_is_refused(self):
        with pytest.raises(StaleLease):
            propose_state(running_run(), Completed(), now=NOW, lease=None)

    def test_a_lease_on_a_run_that_holds_none_is_stale(self):
        with pytest.raises(StaleLease):
            propose_state(queued_run(), Cancelled(), now=NOW, lease="L")

    def test_the_server_moves_a_run_without_its_lease(self):
        outcome = propose_state(running_run(), Crashed("no heartbeat"), now=NOW, mover=Mover.SERVER)
        assert outcome.accepted and outcome.state.type is StateType.CRASHED


class TestClaim:
    def test_a_claim_issues_a_lease_and_counts_an_attempt(self):
        outcome = claim(queued_run(), worker="w1", new_lease="L1", now=NOW, attempt=0)
        run = outcome.run
        assert outcome.write and run.state.type is StateType.PENDING
        assert (run.lease, run.worker, run.run_count, run.heartbeat_at) == ("L1", "w1", 1, NOW)

    def test_a_second_claim_of_the_same_attempt_by_another_worker_conflicts(self):
        claimed = claim(queued_run(), worker="w1", new_lease="L1", now=NOW, attempt=0).run
        with pytest.raises(Conflict):
            claim(claimed, worker="w2", new_lease="L2", now=NOW, attempt=0)

    def test_a_repeated_claim_by_the_same_worker_returns_the_same_lease(self):
        claimed = claim(queued_run(), worker="w1", new_lease="L1", now=NOW, attempt=0).run
        again = claim(claimed, worker="w1", new_lease="L9", now=NOW, attempt=0)
        assert again.accepted and not again.write and again.run.lease == "L1"

    def test_a_message_of_an_earlier_attempt_cannot_claim_a_retry(self):
        awaiting = queued_run(run_count=1)
        with pytest.raises(Conflict, match="attempt 0"):
            claim(awaiting, worker="w1", new_lease="L2", now=NOW, attempt=0)

    def test_a_run_waiting_for_its_in_process_retry_cannot_be_claimed(self):
        waiting = queued_run(run_count=1, lease="L")
        with pytest.raises(Conflict, match="held by its attempt"):
            claim(waiting, worker="w2", new_lease="L2", now=NOW, attempt=1)

    def test_a_run_without_a_pool_cannot_be_claimed(self):
        with pytest.raises(Conflict, match="not in a work pool"):
            claim(queued_run(pool=None), worker="w1", new_lease="L1", now=NOW)


class TestRetries:
    def test_a_failure_with_retries_left_awaits_a_retry_in_a_new_attempt(self):
        run = running_run(retries=2, retry_delay_seconds=30)
        outcome = propose_state(run, Failed("boom", details={"exception_type": "KeyError"}),
                                now=NOW, lease="L")
        state = outcome.state
        assert outcome.accepted and outcome.enqueue
        assert (state.type, state.name, state.message) == (StateType.SCHEDULED, "AwaitingRetry", "boom")
        assert state.scheduled_time == NOW + timedelta(seconds=30)
        assert state.details["exception_type"] == "KeyError" and state.details["attempt"] == 1
        assert outcome.run.lease is None and outcome.run.scheduled_at == NOW + timedelta(seconds=30)

    def test_the_last_attempts_failure_is_final(self):
        run = running_run(retries=1, run_count=2)
        outcome = propose_state(run, Failed("boom"), now=NOW, lease="L")
        assert outcome.state.type is StateType.FAILED and not outcome.enqueue
        assert outcome.run.end_time == NOW

    def test_a_crash_reported_by_the_monitor_is_retried_too(self):
        outcome = propose_state(running_run(retries=1), Crashed("lost"), now=NOW, mover=Mover.SERVER)
        assert outcome.state.name == "AwaitingRetry" and outcome.enqueue

    def test_a_run_that_was_being_cancelled_is_not_retried(self):
        run = running_run(retries=3, state=State(type=StateType.CANCELLING))
        outcome = propose_state(run, Crashed("lost"), now=NOW, mover=Mover.SERVER)
        assert outcome.state.type is StateType.CRASHED

    def test_a_run_without_a_pool_is_not_retried_by_the_server(self):
        run = running_run(pool=None, lease="S", retries=3)
        outcome = propose_state(run, Crashed("killed"), now=NOW, lease="S")
        assert outcome.state.type is StateType.CRASHED and not outcome.enqueue

    def test_an_in_process_retry_keeps_the_attempts_lease_and_sends_no_message(self):
        run = running_run(retries=1)
        waiting = propose_state(run, new_state(StateType.SCHEDULED, "AwaitingRetry"),
                                now=NOW, lease="L")
        assert waiting.accepted and not waiting.enqueue and waiting.run.lease == "L"
        assert holds_live_attempt(waiting.run)
        again = propose_state(waiting.run, new_state(StateType.RUNNING, "Retrying"),
                              now=NOW, lease="L")
        assert again.accepted and again.run.run_count == 2

    def test_a_user_retry_is_one_more_attempt_from_the_queue(self):
        failed = running_run(state=Failed("boom"), end_time=NOW)
        outcome = retry(failed, now=NOW)
        assert outcome.enqueue and outcome.run.lease is None and outcome.run.end_time is None
        assert outcome.run.run_count == 1  # the claim counts the new attempt

    def test_a_run_without_a_pool_cannot_be_retried(self):
        outcome = retry(running_run(pool=None, state=Failed()), now=NOW)
        assert not outcome.accepted and "deployment" in outcome.reason


class TestCancel:
    @pytest.mark.parametrize("start", [Scheduled(), State(type=StateType.PENDING)])
    def test_a_run_that_has_not_started_is_cancelled_at_once(self, start):
        outcome = cancel(queued_run(state=start), now=NOW)
        assert outcome.state.type is StateType.CANCELLED and outcome.run.end_time == NOW

    def test_a_running_run_is_cancelling_until_its_worker_confirms(self):
        cancelling = cancel(running_run(), now=NOW).run
        assert cancelling.state.type is StateType.CANCELLING and cancelling.lease == "L"
        confirmed = propose_state(cancelling, Cancelled(), now=NOW, lease="L")
        assert confirmed.accepted and confirmed.state.type is StateType.CANCELLED

    def test_a_cancelling_run_refuses_to_run_on_and_tells_its_process_to_stop(self):
        cancelling = cancel(running_run(), now=NOW).run
        outcome = propose_state(cancelling, Running(), now=NOW, lease="L")
        assert outcome.status is TransitionStatus.ABORT

    def test_cancelling_twice_changes_nothing(self):
        cancelling = cancel(running_run(), now=NOW).run
        again = cancel(cancelling, now=NOW)
        assert again.accepted and not again.write

    def test_a_finished_run_cannot_be_cancelled(self):
        outcome = cancel(running_run(state=Completed()), now=NOW)
        assert outcome.status is TransitionStatus.ABORT and "terminal" in outcome.reason


class TestBookkeeping:
    def test_start_time_is_the_first_start_and_end_time_the_last_end(self):
        later = NOW + timedelta(minutes=5)
        run = running_run(start_time=NOW)
        done = propose_state(run, Completed(), now=later, lease="L").run
        assert done.start_time == NOW and done.end_time == later and done.updated == later

    def test_a_run_that_is_not_in_the_expected_state_is_refused(self):
        outcome = propose_state(running_run(), Completed(), now=NOW, lease="L",
                                expect=StateType.PENDING)
        assert outcome.status is TransitionStatus.REJECT and "expected PENDING" in outcome.reason

    def test_renaming_a_waiting_run_late_keeps_its_queue_message(self):
        run = queued_run(enqueued_at=NOW)
        late = propose_state(run, new_state(StateType.SCHEDULED, "Late", scheduled_time=NOW),
                             now=NOW + timedelta(minutes=1), mover=Mover.SERVER)
        assert late.accepted and not late.enqueue and late.run.enqueued_at == NOW

"""A run's life through the service: claim, report, heartbeat, cancel, retry, crash."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core_fakes import NOW
from sluice.exceptions import Conflict, NotFound, PayloadTooLarge, StaleLease
from sluice.models import (
    MAX_STATE_MESSAGE_CHARS,
    ClaimRequest,
    Completed,
    Failed,
    HeartbeatRequest,
    RunMessage,
    Running,
    SetStateRequest,
    StateType,
    TransitionStatus,
    new_state,
)
from sluice_functions import service
from sluice_functions.service.lifecycle import MAX_WRITE_ATTEMPTS


def claim(ports, run_id, worker="w1", attempt=None, now=NOW):
    return service.claim_flow_run(run_id, ClaimRequest(worker=worker, attempt=attempt),
                                  store=ports.store, metrics=ports.metrics, now=now)


def set_state(ports, run_id, state, lease, transition_id, now=NOW, **fields):
    request = SetStateRequest(state=state, transition_id=transition_id, lease=lease, **fields)
    return service.set_state(run_id, request, store=ports.store, queue=ports.queue,
                             metrics=ports.metrics, now=now)


def beat(ports, run_id, lease, now=NOW):
    return service.heartbeat(run_id, HeartbeatRequest(lease=lease), store=ports.store, now=now)


def history(ports, run_id):
    return [s.name for s in service.list_state_history(run_id, store=ports.store)]


class TestHappyPath:
    def test_a_run_is_claimed_runs_and_completes(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id, attempt=0).lease
        assert set_state(ports, run.id, Running(), lease, "t1").status is TransitionStatus.ACCEPT
        done = set_state(ports, run.id, Completed(), lease, "t2", now=NOW + timedelta(seconds=9))
        assert done.status is TransitionStatus.ACCEPT and done.state.type is StateType.COMPLETED
        stored = ports.store.get_flow_run(run.id)
        assert (stored.run_count, stored.start_time, stored.end_time) == (
            1, NOW, NOW + timedelta(seconds=9))
        assert history(ports, run.id) == ["Scheduled", "Pending", "Running", "Completed"]

    def test_the_claim_answer_carries_the_lease_and_the_run(self, ports):
        run = ports.queued_run()
        answer = claim(ports, run.id)
        assert answer.flow_run.id == run.id and answer.flow_run.lease == answer.lease
        assert [w.name for w in ports.store.list_workers("etl")] == ["w1"]


class TestRepeatsAndRaces:
    def test_a_repeated_transition_id_is_a_no_op_returning_the_current_state(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        again = set_state(ports, run.id, Running(), lease, "t1")
        assert again.status is TransitionStatus.ACCEPT and again.state.type is StateType.RUNNING
        assert history(ports, run.id) == ["Scheduled", "Pending", "Running"]

    def test_a_repeat_after_the_lease_moved_on_is_still_a_no_op(self, ports):
        # Given a failure that sent the run back to the queue (its lease is gone)
        run = ports.queued_run(deployment={"retries": 1})
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        first = set_state(ports, run.id, Failed("boom"), lease, "t2")
        assert first.state.name == "AwaitingRetry"
        # When the worker resends the same transition (its answer was lost)
        again = set_state(ports, run.id, Failed("boom"), lease, "t2")
        # Then it is not a stale lease, and nothing is enqueued twice
        assert again.status is TransitionStatus.ACCEPT and again.state.name == "AwaitingRetry"
        assert len(ports.queue.sent) == 2

    def test_a_write_with_a_stale_lease_is_refused_with_409(self, ports):
        run = ports.queued_run()
        claim(ports, run.id)
        with pytest.raises(StaleLease):
            set_state(ports, run.id, Running(), "not-the-lease", "t1")

    def test_a_lost_race_is_decided_again_on_the_fresh_run(self, ports):
        # Given a store where another writer slips in once between our read and our write
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        original = ports.store.set_flow_run_state
        races = {"left": 1}

        def racing_write(to_write, transition_id):
            if races["left"]:
                races["left"] -= 1
                current = ports.store.get_flow_run(to_write.id)
                ports.store.update_flow_run(current.model_copy(update={"heartbeat_at": NOW}))
            return original(to_write, transition_id)

        ports.store.set_flow_run_state = racing_write
        # When the run reports Running, it still gets through
        assert set_state(ports, run.id, Running(), lease, "t1").status is TransitionStatus.ACCEPT
        assert history(ports, run.id) == ["Scheduled", "Pending", "Running"]

    def test_a_run_that_keeps_changing_gives_up_with_409(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease

        def always_behind(to_write, transition_id):
            raise Conflict("version moved")

        ports.store.set_flow_run_state = always_behind
        calls = []
        original_get = ports.store.get_flow_run
        ports.store.get_flow_run = lambda run_id: calls.append(run_id) or original_get(run_id)
        with pytest.raises(Conflict, match="kept changing"):
            set_state(ports, run.id, Running(), lease, "t1")
        assert len(calls) == MAX_WRITE_ATTEMPTS

    def test_a_second_worker_cannot_claim_a_claimed_run(self, ports):
        run = ports.queued_run()
        first = claim(ports, run.id, worker="w1", attempt=0)
        with pytest.raises(Conflict):
            claim(ports, run.id, worker="w2", attempt=0)
        assert claim(ports, run.id, worker="w1", attempt=0).lease == first.lease

    def test_an_unknown_run_is_not_found(self, ports):
        with pytest.raises(NotFound):
            claim(ports, "nope")

    def test_an_oversized_state_message_is_refused_before_any_write(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        writes = ports.store.writes
        state = new_state(StateType.RUNNING)
        object.__setattr__(state, "message", "m" * (MAX_STATE_MESSAGE_CHARS + 1))
        request = SetStateRequest.model_construct(state=state, transition_id="t1", lease=lease,
                                                  expect=None)
        with pytest.raises(PayloadTooLarge):
            service.set_state(run.id, request, store=ports.store, queue=ports.queue,
                              metrics=ports.metrics, now=NOW)
        assert ports.store.writes == writes


class TestRetries:
    def test_a_failure_with_retries_left_is_enqueued_again_after_its_delay(self, ports):
        run = ports.queued_run(deployment={"retries": 2, "retry_delay_seconds": 60})
        lease = claim(ports, run.id, attempt=0).lease
        set_state(ports, run.id, Running(), lease, "t1")
        answer = set_state(ports, run.id, Failed("boom"), lease, "t2")
        assert answer.state.name == "AwaitingRetry"
        pool, body, delay = ports.queue.sent[-1]
        assert (pool, delay, RunMessage.model_validate_json(body).attempt) == ("etl", 60, 1)
        # And the new message claims attempt 2, while a late copy of the first one cannot
        with pytest.raises(Conflict):
            claim(ports, run.id, worker="w2", attempt=0)
        second = claim(ports, run.id, worker="w2", attempt=1)
        assert second.flow_run.run_count == 2 and second.lease != lease

    def test_a_user_retry_of_a_failed_run_schedules_and_enqueues_it(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        set_state(ports, run.id, Failed("boom"), lease, "t2")
        answer = service.retry_flow_run(run.id, store=ports.store, queue=ports.queue,
                                        metrics=ports.metrics, now=NOW)
        assert answer.status is TransitionStatus.ACCEPT and answer.state.type is StateType.SCHEDULED
        assert len(ports.queue.sent) == 2

    def test_a_user_retry_of_a_completed_run_is_refused(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        set_state(ports, run.id, Completed(), lease, "t2")
        answer = service.retry_flow_run(run.id, store=ports.store, queue=ports.queue,
                                        metrics=ports.metrics, now=NOW)
        assert not answer.status is TransitionStatus.ACCEPT and "terminal" in answer.reason
        assert len(ports.queue.sent) == 1


class TestHeartbeatAndCancel:
    def test_a_heartbeat_is_recorded_and_says_carry_on(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        later = NOW + timedelta(seconds=30)
        answer = beat(ports, run.id, lease, now=later)
        assert not answer.cancel_requested and answer.state.type is StateType.PENDING
        assert ports.store.get_flow_run(run.id).heartbeat_at == later
        assert ports.store.list_workers("etl")[0].last_seen == later

    def test_a_heartbeat_with_a_stale_lease_is_refused(self, ports):
        run = ports.queued_run()
        claim(ports, run.id)
        with pytest.raises(StaleLease):
            beat(ports, run.id, "old")

    def test_cancelling_a_running_run_is_read_from_the_next_heartbeat(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        answer = service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=NOW)
        assert answer.state.type is StateType.CANCELLING
        assert beat(ports, run.id, lease).cancel_requested
        confirmed = set_state(ports, run.id, new_state(StateType.CANCELLED), lease, "t2")
        assert confirmed.status is TransitionStatus.ACCEPT

    def test_a_pending_run_is_cancelled_at_once_and_its_worker_told_to_stop(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        answer = service.cancel_flow_run(run.id, store=ports.store, metrics=ports.metrics, now=NOW)
        assert answer.state.type is StateType.CANCELLED
        assert beat(ports, run.id, lease).cancel_requested
        late_start = set_state(ports, run.id, Running(), lease, "t1")
        assert late_start.status is TransitionStatus.ABORT


class TestMonitorCrash:
    def test_a_silent_run_is_crashed_and_retried_when_it_has_retries(self, ports):
        run = ports.queued_run(deployment={"retries": 1})
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        answer = service.mark_crashed(
            run.id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
            message="no heartbeat for 90 s", heartbeat_expired_before=NOW + timedelta(seconds=1),
            now=NOW + timedelta(seconds=91))
        assert answer.state.name == "AwaitingRetry" and len(ports.queue.sent) == 2
        with pytest.raises(StaleLease):  # the silent worker cannot come back to life
            set_state(ports, run.id, Completed(), lease, "t2")

    def test_a_heartbeat_that_arrives_first_wins_over_the_crash(self, ports):
        run = ports.queued_run()
        lease = claim(ports, run.id).lease
        beat(ports, run.id, lease, now=NOW + timedelta(seconds=60))
        answer = service.mark_crashed(
            run.id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
            message="no heartbeat", heartbeat_expired_before=NOW + timedelta(seconds=30))
        assert answer.status is TransitionStatus.REJECT
        assert ports.store.get_flow_run(run.id).state.type is StateType.PENDING

    def test_a_late_verdict_about_an_attempt_that_ended_leaves_the_retry_alone(self, ports):
        # The monitor read the run Running with a stale heartbeat; before its write, the
        # worker reported the crash itself and the run went to AwaitingRetry.
        run = ports.queued_run(deployment={"retries": 1})
        lease = claim(ports, run.id).lease
        set_state(ports, run.id, Running(), lease, "t1")
        set_state(ports, run.id, Failed("process died"), lease, "t2")
        answer = service.mark_crashed(
            run.id, store=ports.store, queue=ports.queue, metrics=ports.metrics,
            message="no heartbeat", heartbeat_expired_before=NOW + timedelta(seconds=30),
            lease=lease, now=NOW + timedelta(seconds=91))
        assert answer.status is TransitionStatus.REJECT
        assert history(ports, run.id)[-1] == "AwaitingRetry"  # not Crashed for good


class TestClaimIds:
    def test_a_retried_claim_with_the_same_id_gets_the_same_lease(self, ports):
        run = ports.queued_run()
        first = service.claim_flow_run(run.id, ClaimRequest(worker="w1", attempt=0,
                                                            claim_id="m-1"),
                                       store=ports.store, metrics=ports.metrics, now=NOW)
        again = service.claim_flow_run(run.id, ClaimRequest(worker="w1", attempt=0,
                                                            claim_id="m-1"),
                                       store=ports.store, metrics=ports.metrics, now=NOW)
        assert again.lease == first.lease

    def test_a_second_copy_of_the_message_on_the_same_worker_is_refused(self, ports):
        run = ports.queued_run()
        service.claim_flow_run(run.id, ClaimRequest(worker="w1", attempt=0, claim_id="m-1"),
                               store=ports.store, metrics=ports.metrics, now=NOW)
        with pytest.raises(Conflict):
            service.claim_flow_run(run.id, ClaimRequest(worker="w1", attempt=0,
                                                        claim_id="m-2"),
                                   store=ports.store, metrics=ports.metrics, now=NOW)
        assert service.get_flow_run(run.id, store=ports.store).claim_id is None  # not shown


class TestStaleEvents:
    def test_a_batch_of_an_attempt_that_lost_the_run_is_refused_with_409(self, ports):
        from sluice.models import EventsBatch, LogRecord

        run = ports.queued_run(deployment={"retries": 1})
        lease = claim(ports, run.id).lease
        line = LogRecord(id="l1", flow_run_id=run.id, timestamp=NOW, message="hi")
        record = lambda lease: service.record_events(  # noqa: E731
            run.id, EventsBatch(logs=[line], lease=lease), store=ports.store,
            logs=ports.logs, metrics=ports.metrics)
        assert record(lease).logs == 1
        set_state(ports, run.id, Failed("boom"), lease, "t1")  # retried: the lease is gone
        # The attempt that just ended may still send its last lines (they land after its end)
        assert record(lease).logs == 1
        # but once a later attempt ended too, it is refused
        second = claim(ports, run.id, worker="w2").lease
        set_state(ports, run.id, Failed("again"), second, "t2")
        with pytest.raises(StaleLease):
            record(lease)
        with pytest.raises(StaleLease):
            record(None)  # without a lease nothing is written either

"""Leases through the service: their terms in claim and heartbeat answers, renewals, and what
ends with an attempt (issue 12)."""

from __future__ import annotations

from datetime import timedelta

from core_fakes import NOW
from sluice.models import (
    ClaimRequest,
    Completed,
    EventsBatch,
    Failed,
    HeartbeatRequest,
    Running,
    SetStateRequest,
    StateType,
    TaskRun,
)
from sluice_functions import service
from sluice_functions.monitoring import monitor_runs
from sluice_functions.orchestration import LeasePolicy

LEASES = LeasePolicy(timedelta(seconds=30))


def claim(ports, run_id, now=NOW, claim_id="m-1"):
    return service.claim_flow_run(run_id, ClaimRequest(worker="w1", claim_id=claim_id),
                                  store=ports.store, metrics=ports.metrics, now=now,
                                  leases=LEASES)


def report(ports, run_id, state, lease, transition_id):
    return service.set_state(run_id, SetStateRequest(state=state, transition_id=transition_id,
                                                     lease=lease),
                             store=ports.store, queue=ports.queue, metrics=ports.metrics,
                             now=NOW)


def test_the_claim_and_every_heartbeat_state_the_leases_terms(ports):
    # Given a 30 s lease policy, When a run is claimed and later renewed
    run = ports.queued_run()
    claimed = claim(ports, run.id)
    # Then each answer says when the lease expires and how often to renew it
    assert (claimed.lease_seconds, claimed.heartbeat_interval_seconds) == (30.0, 10.0)
    assert claimed.lease_expires_at == NOW + timedelta(seconds=30)
    later = NOW + timedelta(seconds=12)
    beat = service.heartbeat(run.id, HeartbeatRequest(lease=claimed.lease), store=ports.store,
                             now=later, leases=LEASES)
    assert beat.lease_expires_at == later + timedelta(seconds=30)
    assert ports.store.get_flow_run(run.id).heartbeat_at == later


def test_a_repeated_claim_renews_the_lease_it_returns(ports):
    # Given a claim whose answer was lost
    run = ports.queued_run()
    first = claim(ports, run.id)
    # When the worker claims again with the same claim id 20 s later
    again = claim(ports, run.id, now=NOW + timedelta(seconds=20))
    # Then it gets the same lease, counted from now on both sides
    assert again.lease == first.lease
    assert again.lease_expires_at == NOW + timedelta(seconds=50)
    assert ports.store.get_flow_run(run.id).heartbeat_at == NOW + timedelta(seconds=20)


def test_a_heartbeat_of_an_ended_attempt_states_no_terms(ports):
    run = ports.queued_run()
    lease = claim(ports, run.id).lease
    report(ports, run.id, Completed(), lease, "done")
    beat = service.heartbeat(run.id, HeartbeatRequest(lease=lease), store=ports.store, now=NOW,
                             leases=LEASES)
    assert beat.lease_expires_at is None and beat.state.type is StateType.COMPLETED


def test_the_open_task_runs_of_an_attempt_end_with_it(ports):
    # Given a running attempt with one finished and one open task run
    run = ports.queued_run()
    lease = claim(ports, run.id).lease
    report(ports, run.id, Running(), lease, "start")
    records = [TaskRun(id="t1", flow_run_id=run.id, task_name="a", name="a-0",
                       state=Completed(), version=2),
               TaskRun(id="t2", flow_run_id=run.id, task_name="b", name="b-0",
                       state=Running(), version=1)]
    service.record_events(run.id, EventsBatch(task_runs=records, lease=lease),
                          store=ports.store, logs=ports.logs, metrics=ports.metrics)
    # When the monitor declares the attempt dead (lease 30 s + margin 3 s)
    result = monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                          now=NOW + timedelta(seconds=34), heartbeat_timeout=30)
    # Then the open task run ended Crashed with it, and the finished one is untouched
    assert result.crashed == 1
    task_runs = {t.id: t for t in service.list_task_runs(run.id, store=ports.store).items}
    assert task_runs["t1"].state.type is StateType.COMPLETED
    assert task_runs["t2"].state.type is StateType.CRASHED
    assert "attempt ended" in task_runs["t2"].state.message


def test_a_run_is_not_crashed_within_the_margin_after_its_lease(ports):
    run = ports.queued_run()
    claim(ports, run.id)
    kwargs = dict(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                  heartbeat_timeout=30)
    assert monitor_runs(now=NOW + timedelta(seconds=32), **kwargs).crashed == 0
    assert monitor_runs(now=NOW + timedelta(seconds=34), **kwargs).crashed == 1


def test_an_in_process_retry_keeps_its_task_runs_open_until_they_end(ports):
    # An attempt that retries in its own process keeps its lease: nothing is closed.
    run = ports.queued_run(deployment={"retries": 0})
    lease = claim(ports, run.id).lease
    report(ports, run.id, Running(), lease, "start")
    records = [TaskRun(id="t1", flow_run_id=run.id, task_name="b", name="b-0",
                       state=Running(), version=1)]
    service.record_events(run.id, EventsBatch(task_runs=records, lease=lease),
                          store=ports.store, logs=ports.logs, metrics=ports.metrics)
    report(ports, run.id, Failed("boom"), lease, "fail")
    (task_run,) = service.list_task_runs(run.id, store=ports.store).items
    assert task_run.state.type is StateType.CRASHED  # the attempt failed: its task ended too


def test_a_lease_granted_on_longer_terms_holds_after_the_timeout_was_shortened(ports):
    # Given a run claimed under 30 s leases
    run = ports.queued_run()
    claim(ports, run.id)
    # When the monitor now judges with a 5 s timeout, Then the lease granted still holds
    kwargs = dict(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                  heartbeat_timeout=5)
    assert monitor_runs(now=NOW + timedelta(seconds=20), **kwargs).crashed == 0
    # and the run is crashed once that lease ran out by the (new) margin
    assert monitor_runs(now=NOW + timedelta(seconds=33), **kwargs).crashed == 1


def test_a_stored_lease_expiry_beyond_the_longest_lease_is_not_believed(ports):
    # Given a run whose stored expiry is absurd (bad data: year 9999)
    from datetime import datetime, timezone

    run = ports.queued_run()
    claim(ports, run.id)
    stored = ports.store.get_flow_run(run.id)
    ports.store.update_flow_run(stored.model_copy(update={
        "lease_expires_at": datetime(9999, 1, 1, tzinfo=timezone.utc)}))
    # Then it is crashed once the longest lease (a day) after its last renewal ran out
    kwargs = dict(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                  heartbeat_timeout=30)
    assert monitor_runs(now=NOW + timedelta(hours=23), **kwargs).crashed == 0
    assert monitor_runs(now=NOW + timedelta(days=1, minutes=1), **kwargs).crashed == 1

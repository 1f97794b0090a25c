"""The monitor tick: crashed runs, late runs, repaired messages (SQLite, hand-moved clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import T0, Plane
from sluice.exceptions import StaleLease
from sluice.models import (
    AwaitingRetry,
    Completed,
    DeploymentRunRequest,
    HeartbeatRequest,
    Running,
    StateType,
    TransitionStatus,
)
from sluice_functions import service
from sluice_functions.monitoring import monitor_runs

TIMEOUT = 30  # seconds: the heartbeat timeout (the lease) of these tests
#: The lease's margin (orchestration.leases: 10 % of it, at least 2 s): a run is declared dead
#: only this long after its lease expired.
MARGIN = 3
DEAD = TIMEOUT + MARGIN


def monitor(plane: Plane, seconds_after_t0: float, **options):
    plane.clock.now = T0 + timedelta(seconds=seconds_after_t0)
    return monitor_runs(**plane.ports, now=plane.clock(), heartbeat_timeout=TIMEOUT, **options)


def new_run(plane: Plane, **deployment_fields):
    dep = plane.deploy(**deployment_fields)
    return service.run_deployment(dep.id, DeploymentRunRequest(), **plane.ports, now=plane.clock())


def running(plane: Plane, **deployment_fields):
    """A run claimed and Running at T0, with its lease."""
    run = new_run(plane, **deployment_fields)
    lease = plane.claim(run.id, attempt=0).lease
    assert plane.report(run.id, Running(), lease, "start").status is TransitionStatus.ACCEPT
    return run, lease


def beat(plane: Plane, run_id: str, lease: str, seconds_after_t0: float):
    plane.clock.now = T0 + timedelta(seconds=seconds_after_t0)
    return service.heartbeat(run_id, HeartbeatRequest(lease=lease), store=plane.store,
                             now=plane.clock())


class TestCrashed:
    def test_a_run_that_keeps_heartbeating_is_left_alone(self, plane):
        run, lease = running(plane)
        beat(plane, run.id, lease, 20)
        assert monitor(plane, 45).crashed == 0
        assert plane.store.get_flow_run(run.id).state.type is StateType.RUNNING

    def test_a_silent_run_is_crashed_once_its_heartbeat_expired(self, plane):
        run, lease = running(plane)
        assert monitor(plane, DEAD - 1).crashed == 0
        result = monitor(plane, DEAD + 1)
        stored = plane.store.get_flow_run(run.id)
        assert result.crashed == 1 and stored.state.type is StateType.CRASHED
        assert "no heartbeat for over 33 s" in stored.state.message
        assert stored.end_time == plane.clock() and plane.metrics.counter("CrashedRuns") == 1
        assert monitor(plane, TIMEOUT + 60).crashed == 0  # once
        # The worker was only slow: its late heartbeat and report cannot revive the run.
        assert beat(plane, run.id, lease, TIMEOUT + 61).state.type is StateType.CRASHED
        late = plane.report(run.id, Completed(), lease, "late-done")
        assert late.status is not TransitionStatus.ACCEPT
        assert plane.store.get_flow_run(run.id).state.type is StateType.CRASHED

    def test_a_crashed_run_with_retries_left_awaits_a_retry_and_is_enqueued_again(self, plane):
        run, lease = running(plane, retries=1, retry_delay_seconds=10)
        result = monitor(plane, DEAD + 1)
        stored = plane.store.get_flow_run(run.id)
        assert (result.retried, result.crashed) == (1, 0)
        assert stored.state.name == "AwaitingRetry" and stored.lease is None
        assert plane.queue.sends_of(run.id) == [(0, 0), (1, 10)]  # attempt 1, after its delay
        # The old attempt's worker comes back: its heartbeat and its report are refused.
        with pytest.raises(StaleLease):
            beat(plane, run.id, lease, DEAD + 2)
        with pytest.raises(StaleLease):
            plane.report(run.id, Completed(), lease, "late-done")
        # The retry is claimed and completes.
        plane.clock.now += timedelta(seconds=10)
        new_lease = plane.claim(run.id, worker="w2", attempt=1).lease
        plane.report(run.id, Running(), new_lease, "r2")
        assert plane.report(run.id, Completed(), new_lease, "d2").state.type is StateType.COMPLETED
        assert plane.store.get_flow_run(run.id).run_count == 2

    def test_a_final_state_wins_over_an_expired_heartbeat(self, plane):
        run, lease = running(plane)
        plane.clock.now = T0 + timedelta(seconds=TIMEOUT * 3)
        plane.report(run.id, Completed(), lease, "done")  # reported late, heartbeat long gone
        assert monitor(plane, TIMEOUT * 4).crashed == 0
        assert plane.store.get_flow_run(run.id).state.type is StateType.COMPLETED

    def test_a_heartbeat_that_lands_during_the_monitor_pass_wins(self, plane):
        run, lease = running(plane)
        store = plane.store

        class HeartbeatAfterListing:
            """The store, with the worker's heartbeat landing right after the monitor read."""

            def __getattr__(self, name):
                return getattr(store, name)

            def list_flow_runs_by_state(self, state_type, **kwargs):
                page = store.list_flow_runs_by_state(state_type, **kwargs)
                if state_type is StateType.RUNNING and page.items:
                    service.heartbeat(run.id, HeartbeatRequest(lease=lease), store=store,
                                      now=T0 + timedelta(seconds=DEAD + 1))
                return page

        result = monitor_runs(store=HeartbeatAfterListing(), queue=plane.queue,
                              metrics=plane.metrics, now=T0 + timedelta(seconds=DEAD + 1),
                              heartbeat_timeout=TIMEOUT)
        assert result.crashed == 0
        assert plane.store.get_flow_run(run.id).state.type is StateType.RUNNING

    def test_a_claimed_run_that_never_started_is_crashed_from_its_claim_time(self, plane):
        run = new_run(plane)
        plane.claim(run.id, attempt=0)
        assert monitor(plane, DEAD + 1).crashed == 1

    def test_a_process_that_died_while_waiting_for_an_in_process_retry_is_crashed(self, plane):
        run, lease = running(plane)
        retry_at = T0 + timedelta(seconds=100)
        plane.report(run.id, AwaitingRetry(scheduled_time=retry_at), lease, "wait")
        assert plane.store.get_flow_run(run.id).lease == lease  # the process keeps its lease
        assert monitor(plane, 90).crashed == 0  # not due yet: it sleeps until 100
        assert monitor(plane, 101).crashed == 1


class TestLate:
    def test_a_run_not_started_after_the_grace_period_is_late_once(self, plane):
        run = new_run(plane)
        assert monitor(plane, 14).late == 0
        assert monitor(plane, 16).late == 1
        stored = plane.store.get_flow_run(run.id)
        assert (stored.state.type, stored.state.name) == (StateType.SCHEDULED, "Late")
        assert stored.enqueued_at == T0  # it keeps its queue message
        assert monitor(plane, 60).late == 0
        assert plane.metrics.counter("LateRuns", {"pool": "etl"}) == 1
        assert plane.claim(run.id, attempt=0).flow_run.state.type is StateType.PENDING

    def test_the_grace_period_is_configurable(self, plane):
        new_run(plane)
        assert monitor(plane, 16, late_grace=60).late == 0
        assert monitor(plane, 61, late_grace=60).late == 1

    def test_runs_awaiting_a_retry_are_not_called_late(self, plane):
        run, _ = running(plane, retries=1)
        monitor(plane, DEAD + 1)  # crashed -> AwaitingRetry now
        assert monitor(plane, TIMEOUT + 100).late == 0
        assert plane.store.get_flow_run(run.id).state.name == "AwaitingRetry"


class TestRepair:
    def test_a_message_lost_between_write_and_send_is_sent_again(self, plane):
        run = new_run(plane)
        # The API died after its write: the run says "enqueued" but no message exists.
        plane.queue.sent.clear()
        for message in plane.queue.receive("etl", max_messages=10):
            plane.queue.delete("etl", message.receipt_handle)
        assert monitor(plane, 10 * 60).repaired == 0  # might still be in flight
        assert monitor(plane, 21 * 60).repaired == 1
        assert plane.queue.sent == [(run.id, 0, 0)]
        assert plane.queue.depth("etl").visible == 1
        # The claim keeps it from running twice: a second message finds it claimed.
        plane.claim(run.id, worker="w1", attempt=0)
        with pytest.raises(Exception, match="held by its attempt|cannot be claimed"):
            plane.claim(run.id, worker="w2", attempt=0)

    def test_the_repair_window_is_configurable(self, plane):
        new_run(plane)
        plane.queue.sent.clear()
        assert monitor(plane, 61, repair_after=60).repaired == 1

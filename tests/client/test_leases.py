"""Leases in the flow's process: a script run holds its run from its creation and renews it
from a background thread; a run whose lease is lost (expired unrenewed, taken by another
attempt, cancelled) starts no further task run."""

from __future__ import annotations

import threading
import time

import pytest

from sluice import exceptions as errors
from sluice import flow, task
from sluice.client.reporter import HttpReporter
from sluice.leases import LeaseKeeper, LeaseLost, LocalLease, lease_clock
from sluice.models import (
    Cancelling,
    HeartbeatResponse,
    Running,
    SetStateResponse,
    StateType,
    TransitionStatus,
)
from sluice.profiles import Connection


class Plane:
    """A control plane as the SDK sees it: creates, transitions, heartbeats (scripted)."""

    def __init__(self, lease_seconds: float = 30.0) -> None:
        self.connection = Connection(api_url="http://fake")
        self.created: list = []
        self.transitions: list[tuple[str, str | None]] = []
        self.beats: list[str] = []
        self.lease_seconds = lease_seconds
        self.refuse_beats = False
        self.cancel = False
        self.beat = threading.Event()

    def create_flow_run(self, request):
        self.created.append(request)

    def set_flow_run_state(self, flow_run_id, state, transition_id, lease=None):
        self.transitions.append((state.type.value, lease))
        return SetStateResponse(status=TransitionStatus.ACCEPT, state=state)

    def heartbeat(self, flow_run_id, lease, **_):
        self.beats.append(lease)
        self.beat.set()
        if self.refuse_beats:
            raise errors.StaleLease("a newer attempt holds it")
        state = Cancelling() if self.cancel else Running()
        return HeartbeatResponse(state=state, cancel_requested=self.cancel,
                                 lease_seconds=self.lease_seconds,
                                 heartbeat_interval_seconds=self.lease_seconds / 3)

    def send_events(self, flow_run_id, batch, attempts=None):
        return None


def test_a_script_run_is_created_pending_with_its_own_lease_and_every_write_carries_it(
        _the_plane_is_the_processes_reporter):
    plane = _the_plane_is_the_processes_reporter

    @flow
    def script() -> bool:
        # Renewed from the start, while the run goes on (a run that ended before the keeper's
        # thread got to it needs no renewal: the test waits for it inside the run)
        return plane.beat.wait(5)

    state = script(return_state=True)
    assert state.is_completed() and state.result() is True
    (request,) = plane.created
    assert request.state.type is StateType.PENDING and len(request.lease) >= 16
    assert {lease for _, lease in plane.transitions} == {request.lease}
    assert plane.beats[0] == request.lease


@pytest.fixture(autouse=True)
def _the_plane_is_the_processes_reporter(monkeypatch):
    """Runs of this module report to a fresh `Plane` through the process's HTTP reporter."""
    plane = Plane(lease_seconds=1.5)  # renewed every 0.5 s
    reporter = HttpReporter(plane)
    monkeypatch.setattr("sluice.engine.flow_engine.reporter_for_new_run", lambda: reporter)
    yield plane


def test_a_run_that_lost_its_lease_starts_no_more_tasks_and_a_cancelled_one_confirms(
        _the_plane_is_the_processes_reporter):
    plane = _the_plane_is_the_processes_reporter
    started: list[int] = []

    @task
    def step(n: int) -> int:
        started.append(n)
        if n == 1:
            plane.cancel = True  # cancelled while the run goes on
            plane.beat.clear()
            assert plane.beat.wait(5)  # the keeper hears it at its next renewal
            time.sleep(0.1)
        return n

    @flow
    def pipeline() -> None:
        for n in range(1, 4):
            step(n)

    state = pipeline(return_state=True)
    assert started == [1]  # step 2 never started
    assert state.type is StateType.CANCELLED
    assert plane.transitions[-1][0] == "CANCELLED"  # the holder confirmed the cancel


def test_a_local_lease_past_its_deadline_is_lost_and_says_why():
    lease = LocalLease("fr-1", deadline=lease_clock() - 0.01)
    with pytest.raises(LeaseLost, match="expired without renewal"):
        lease.check()
    # A renewal still waiting to be read (the worker's pipe) is taken before judging.
    renewed = LocalLease("fr-2", deadline=lease_clock() - 0.01)
    renewed._refresh = lambda: renewed.renew(lease_clock() + 10)
    renewed.check()


def test_the_keeper_loses_a_lease_the_control_plane_refuses():
    plane = Plane(lease_seconds=3.0)
    keeper = LeaseKeeper(plane)
    plane.refuse_beats = True
    local = keeper.hold("fr-1", "L" * 32)
    assert plane.beat.wait(5)
    deadline = lease_clock() + 5
    while local.lost is None and lease_clock() < deadline:
        time.sleep(0.01)
    with pytest.raises(LeaseLost, match="no longer gives it"):
        local.check()


def test_the_keeper_sets_the_deadline_from_the_terms_it_is_given():
    plane = Plane(lease_seconds=3.0)
    keeper = LeaseKeeper(plane)
    before = lease_clock()
    local = keeper.hold("fr-1", "L" * 32)
    deadline = lease_clock() + 5
    while local.deadline is None and lease_clock() < deadline:
        time.sleep(0.01)
    assert before + 3.0 <= local.deadline <= lease_clock() + 3.0
    assert keeper._interval == 1.0
    keeper.release("fr-1")

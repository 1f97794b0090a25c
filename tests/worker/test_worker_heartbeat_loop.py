"""The worker's per-worker heartbeat (`sluice_worker.worker_leases`) with a fake control plane:
what each answer does to the runs it holds."""

from __future__ import annotations

from typing import Any

from sluice import exceptions as errors
from sluice.leases import lease_clock
from sluice.models import RunLeaseOutcome, StateType, WorkerLeaseAnswer, new_state
from sluice_worker.attempt_lease import AttemptLease
from sluice_worker.worker_leases import WorkerLeases

RUNNING = new_state(StateType.RUNNING)


class Supervisor:
    def __init__(self) -> None:
        self.stops: list[str] = []

    def request_stop(self, reason: str) -> None:
        self.stops.append(reason)


class Plane:
    """Answers each beat with `outcomes` (run id -> outcome), or raises `error`."""

    def __init__(self) -> None:
        self.outcomes: dict[str, RunLeaseOutcome] = {}
        self.error: Exception | None = None
        self.beats: list[Any] = []

    def worker_lease_heartbeat(self, pool: str, worker: str, beat: Any, *,
                               timeout: float) -> WorkerLeaseAnswer:
        self.beats.append(beat)
        if self.error is not None:
            raise self.error
        return WorkerLeaseAnswer(session=beat.session, lease_seconds=30.0,
                                 heartbeat_interval_seconds=10.0,
                                 runs={held.flow_run_id: self.outcomes.get(
                                     held.flow_run_id, RunLeaseOutcome(renewed=True,
                                                                       state=RUNNING))
                                       for held in beat.leases})


def leases_of(plane: Plane) -> WorkerLeases:
    return WorkerLeases(plane, pool="etl", worker="w1", max_interval=5.0, idle_interval=30.0,
                        presence=lambda: {"slots": 2})


def held_run(leases: WorkerLeases, run_id: str) -> tuple[AttemptLease, Supervisor]:
    deadline, supervisor = AttemptLease(5.0), Supervisor()
    deadline.deadline = lease_clock() + 1.0  # as a claim a while ago left it
    leases.hold(run_id, f"lease-{run_id}", deadline, supervisor, session=leases.session)
    return deadline, supervisor


def test_one_beat_renews_every_held_run_and_names_them_all():
    # Given a session holding two runs
    plane = Plane()
    leases = leases_of(plane)
    (a, _), (b, _) = held_run(leases, "a"), held_run(leases, "b")
    # When it beats once
    before = lease_clock()
    leases.beat_once()
    # Then one request named both runs, and each deadline is the send time + the lease
    assert len(plane.beats) == 1
    assert {held.flow_run_id for held in plane.beats[0].leases} == {"a", "b"}
    assert plane.beats[0].slots == 2
    assert a.deadline >= before + 30.0 and b.deadline >= before + 30.0
    assert leases.active and leases.interval == 5.0


def test_cancel_and_stop_reach_their_runs_only():
    plane = Plane()
    leases = leases_of(plane)
    (_, cancelled), (_, lost), (_, fine) = (held_run(leases, r) for r in ("c", "l", "f"))
    plane.outcomes = {"c": RunLeaseOutcome(renewed=True, cancel_requested=True, state=RUNNING),
                      "l": RunLeaseOutcome(stop=True)}
    leases.beat_once()
    assert (cancelled.stops, lost.stops, fine.stops) == (["cancel"], ["stale"], [])
    # And a stopped run is not named again
    leases.beat_once()
    assert {held.flow_run_id for held in plane.beats[-1].leases} == {"c", "f"}


def test_a_failed_beat_leaves_each_deadline_where_it_was():
    plane = Plane()
    leases = leases_of(plane)
    deadline, supervisor = held_run(leases, "a")
    was = deadline.deadline
    plane.error = errors.ServiceUnavailable("down")
    leases.beat_once()
    assert deadline.deadline == was and supervisor.stops == []
    # and the next beat comes before that deadline, twice over
    assert leases.next_wait() <= (was - lease_clock()) / 2 + 0.01


def test_an_expired_session_stops_all_its_runs_and_starts_a_new_session():
    plane = Plane()
    leases = leases_of(plane)
    runs = [held_run(leases, r) for r in ("a", "b")]
    old = leases.session
    plane.error = errors.StaleLease("session expired")
    leases.beat_once()
    assert [supervisor.stops for _, supervisor in runs] == [["expired"], ["expired"]]
    assert leases.session != old and leases.held_count() == 0
    # And a run claimed for the old session is stopped at once
    late = Supervisor()
    leases.hold("c", "lease-c", AttemptLease(5.0), late, session=old)
    assert late.stops == ["expired"] and leases.held_count() == 0


def test_an_older_control_plane_turns_per_worker_beats_off():
    plane = Plane()
    leases = leases_of(plane)
    plane.error = errors.NotFound("no such route")
    leases.beat_once()
    assert leases.supported is False and not leases.active

"""Issue 20: an idle worker beats its presence as rarely as the control plane says
(`idle_beat_seconds`), a busy one every interval; the beat after the last run went still comes
at the busy interval (so the control plane's copy of the session drops its runs while its lease
is valid), and a claim counts as the first sign of life of its run (no beat at once). A control
plane that names no idle period keeps the old rule (idle beats within the session's lease)."""

from __future__ import annotations

from sluice.leases import lease_clock
from sluice_worker.attempt_lease import AttemptLease
from sluice_worker.worker_leases import WorkerLeases
from test_worker_heartbeat_loop import Plane, Supervisor

BUSY_INTERVAL = 5.0  # the worker's --heartbeat-interval in these tests
SLACK = 0.5  # the clock moves between a call and the check
IDLE_BEAT_SECONDS = 180.0


class IdleAwarePlane(Plane):
    """A control plane that names its idle period in every answer."""

    def worker_lease_heartbeat(self, *args, **kwargs):
        answer = super().worker_lease_heartbeat(*args, **kwargs)
        return answer.model_copy(update={"idle_beat_seconds": IDLE_BEAT_SECONDS})


def leases_of(plane: Plane, *, presence: float = 30.0) -> WorkerLeases:
    return WorkerLeases(plane, pool="etl", worker="w1", max_interval=BUSY_INTERVAL,
                        idle_interval=presence, presence=lambda: {"slots": 2})


def claim(leases: WorkerLeases, run_id: str) -> None:
    deadline = AttemptLease(30.0)
    deadline.deadline = lease_clock() + 30.0  # a claim just now
    leases.hold(run_id, f"lease-{run_id}", deadline, Supervisor(), session=leases.session)


def test_an_idle_worker_beats_every_idle_period_longer_than_a_lease():
    # Given a worker holding nothing, after one (presence) beat
    plane = IdleAwarePlane()
    leases = leases_of(plane)
    leases.beat_once()
    # Then the next beat is an idle period away, longer than the control plane's lease
    assert plane.beats[0].leases == []
    assert leases.idle_period == IDLE_BEAT_SECONDS > 30.0
    assert IDLE_BEAT_SECONDS - SLACK <= leases.next_wait() <= IDLE_BEAT_SECONDS


def test_a_short_presence_interval_shortens_idle_beats_too():
    # Given a worker started with short heartbeats (tests, demos): presence every 1.5 s
    plane = IdleAwarePlane()
    leases = leases_of(plane, presence=1.5)
    leases.beat_once()
    # Then it beats idle every six of them
    assert leases.idle_period == 9.0


def test_the_first_beat_after_a_claim_comes_one_interval_later():
    # Given an idle worker that just beat
    plane = IdleAwarePlane()
    leases = leases_of(plane)
    leases.beat_once()
    # When it claims a run
    claim(leases, "a")
    # Then the next beat is one busy interval away (the claim started the run's lease)
    assert BUSY_INTERVAL - SLACK <= leases.next_wait() <= BUSY_INTERVAL


def test_after_the_last_run_goes_one_beat_at_the_busy_interval_then_idle():
    # Given a worker that renewed a run, which then ended
    plane = IdleAwarePlane()
    leases = leases_of(plane)
    claim(leases, "a")
    leases.beat_once()
    leases.release("a", "lease-a")
    # Then its next beat still comes at the busy interval (to drop the run from its session)
    assert leases.next_wait() <= BUSY_INTERVAL
    # And once that beat (naming nothing) went through, beats are idle ones
    leases.beat_once()
    assert plane.beats[-1].leases == []
    assert leases.next_wait() >= IDLE_BEAT_SECONDS - SLACK


def test_a_failed_emptying_beat_is_retried_at_the_busy_interval():
    from sluice import exceptions as errors
    plane = IdleAwarePlane()
    leases = leases_of(plane)
    claim(leases, "a")
    leases.beat_once()
    leases.release("a", "lease-a")
    # When the beat that would drop the run fails
    plane.error = errors.ServiceUnavailable("down")
    leases.beat_once()
    # Then the next one still comes at the busy interval
    assert leases.next_wait() <= BUSY_INTERVAL


def test_a_control_plane_that_names_no_idle_period_gets_beats_within_its_lease():
    # Given an older control plane (renewal interval 10 s: its lease is 30 s)
    plane = Plane()
    leases = leases_of(plane)
    # When the idle worker beats
    leases.beat_once()
    # Then its next idle beat comes within two renewal intervals (the session stays alive)
    assert leases.idle_period == 20.0
    assert leases.next_wait() <= 20.0

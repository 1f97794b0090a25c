"""Issue 20: an idle worker's beat is presence only (one write: the worker's last_seen, no
session write), so it may come less often than a lease; the session's fencing rules still hold
for every run it ever renewed. On the in-memory fakes and on SQLite (the `plane` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sluice.exceptions import StaleLease
from sluice_functions.service.pools import WORKER_IDLE_BEAT, WORKER_ONLINE_WITHIN

from test_worker_leases import LEASES, NOW, SILENCE, plane  # noqa: F401  (the fixture)

#: Longer than a lease: an idle session's stored lease has run out between two idle beats.
QUIET = WORKER_IDLE_BEAT


def test_every_answer_names_the_idle_period_which_online_outlasts(plane):
    # When a worker beats, Then the answer tells it how often to beat while idle
    answer = plane.beat("s1", {}, NOW)
    assert answer.idle_beat_seconds == WORKER_IDLE_BEAT.total_seconds()
    assert WORKER_IDLE_BEAT > timedelta(seconds=90)  # the point: rarer than a default lease
    # And a worker stays online across one missed idle beat
    assert WORKER_ONLINE_WITHIN >= 2 * WORKER_IDLE_BEAT


def test_an_idle_beat_writes_the_worker_only(plane):
    # Given a fresh worker session holding nothing
    # When it beats twice with no run
    plane.beat("s1", {}, NOW)
    plane.beat("s1", {}, NOW + QUIET)
    # Then the pool shows the worker as last seen at the second beat
    (worker,) = plane.store.list_workers("etl")
    assert worker.last_seen == NOW + QUIET
    # And no session was written (nothing to renew, nothing to fence)
    assert plane.store.get_worker_session("s1") is None


def test_a_session_that_went_idle_writes_once_then_stays_quiet(plane):
    # Given a session that renewed a run, which then ended (the worker stopped naming it)
    run_id = plane.run()
    plane.beat("s1", {run_id: plane.claim(run_id, "s1")}, NOW)
    # When it beats idle twice
    plane.beat("s1", {}, NOW + timedelta(seconds=10))
    dropped = plane.store.get_worker_session("s1")
    plane.beat("s1", {}, NOW + timedelta(seconds=10) + QUIET)
    # Then the first idle beat dropped the run from the session, the second wrote nothing
    assert dropped.held == {} and dropped.renewed_at == NOW + timedelta(seconds=10)
    assert plane.store.get_worker_session("s1") == dropped


def test_a_run_claimed_after_a_quiet_spell_is_renewed_by_the_first_beat(plane):
    # Given a session that held a run, went idle, and stayed quiet longer than a lease
    first = plane.run()
    plane.beat("s1", {first: plane.claim(first, "s1")}, NOW)
    plane.beat("s1", {}, NOW + timedelta(seconds=10))
    later = NOW + timedelta(seconds=10) + 2 * QUIET
    # When it claims a new run and beats one interval later
    run_id = plane.run()
    lease = plane.claim(run_id, "s1", at=later)
    answer = plane.beat("s1", {run_id: lease}, later + timedelta(seconds=10))
    # Then the run is renewed (its claim is recent), and the session holds it from now on
    assert answer.runs[run_id].renewed and not answer.runs[run_id].stop
    assert plane.store.get_worker_session("s1").held == {run_id: lease}
    # And the monitor, a lease later, leaves it alone (the first run, dropped from the session
    # while still Running here, is the one it crashes)
    plane.monitor(later + timedelta(seconds=10) + SILENCE - timedelta(seconds=1))
    assert (plane.state(run_id), plane.state(first)) == ("Running", "Crashed")


def test_a_run_claimed_too_long_before_the_first_beat_is_not_revived(plane):
    # Given an idle-again session, and a run it claimed longer than a lease ago
    first = plane.run()
    plane.beat("s1", {first: plane.claim(first, "s1")}, NOW)
    plane.beat("s1", {}, NOW + timedelta(seconds=10))
    claimed_at = NOW + timedelta(seconds=10) + QUIET
    run_id = plane.run()
    lease = plane.claim(run_id, "s1", at=claimed_at)
    # When the worker (frozen meanwhile) beats only after the run's lease ran out
    answer = plane.beat("s1", {run_id: lease}, claimed_at + LEASES.duration + timedelta(seconds=1))
    # Then it must stop the run: nothing renewed it in time
    assert answer.runs[run_id].stop and not answer.runs[run_id].renewed


@pytest.mark.parametrize("names_the_run", [True, False])
def test_an_expired_session_that_held_runs_is_still_refused(plane, names_the_run):
    # Given a session that renewed a run, then went silent longer than its lease
    run_id = plane.run()
    lease = plane.claim(run_id, "s1")
    plane.beat("s1", {run_id: lease}, NOW)
    late = NOW + LEASES.duration + timedelta(seconds=1)
    # When it beats again (still naming the run, or idle), Then 409: its runs may be another
    # attempt's by now; its worker stops them and starts a new session
    with pytest.raises(StaleLease):
        plane.beat("s1", {run_id: lease} if names_the_run else {}, late)

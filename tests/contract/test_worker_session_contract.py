"""`RunStore` contract of worker sessions (per-worker heartbeats) and batch reads of runs: every
adapter stores a session's lease with a compare-and-set that never revives an expired one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from contract_support import at, flow_run, new_id

from sluice.exceptions import Conflict
from sluice_functions.ports import WorkerSession


def session(session_id: str, renewed: float, held: dict[str, str] | None = None,
            seconds: float = 30) -> WorkerSession:
    return WorkerSession(session=session_id, pool="etl", worker="w1", renewed_at=at(renewed),
                         lease_expires_at=at(renewed) + timedelta(seconds=seconds),
                         held=held or {})


def test_a_new_session_is_written_once_and_read_back_whole(run_store):
    # Given a new session holding two runs
    first = session(new_id("s"), 0, {"run-a": "lease-a", "run-b": "lease-b"})
    # When it is written as new
    run_store.put_worker_session(first, previous_renewed_at=None, alive_at=at(0))
    # Then it reads back equal, and writing it as new again is refused
    assert run_store.get_worker_session(first.session) == first
    with pytest.raises(Conflict):
        run_store.put_worker_session(first, previous_renewed_at=None, alive_at=at(1))
    assert run_store.get_worker_session(new_id("s")) is None


def test_a_renewal_is_a_compare_and_set_on_the_previous_renewal(run_store):
    # Given a session renewed at 0 s
    sid = new_id("s")
    run_store.put_worker_session(session(sid, 0, {"r": "l"}), previous_renewed_at=None,
                                 alive_at=at(0))
    # When it is renewed at 10 s from the renewal at 0 s, Then it is stored
    renewed = session(sid, 10, {})
    run_store.put_worker_session(renewed, previous_renewed_at=at(0), alive_at=at(10))
    assert run_store.get_worker_session(sid) == renewed
    # And a renewal from a stale read (the one at 0 s again) is refused, writing nothing
    with pytest.raises(Conflict):
        run_store.put_worker_session(session(sid, 12, {"r": "l"}), previous_renewed_at=at(0),
                                     alive_at=at(12))
    assert run_store.get_worker_session(sid) == renewed


def test_an_expired_session_is_never_renewed(run_store):
    # Given a session whose 30 s lease from 0 s ran out
    sid = new_id("s")
    run_store.put_worker_session(session(sid, 0), previous_renewed_at=None, alive_at=at(0))
    # When a renewal that read it in time is written after the expiry, Then it is refused
    with pytest.raises(Conflict):
        run_store.put_worker_session(session(sid, 29), previous_renewed_at=at(0),
                                     alive_at=at(31))
    # And one written exactly at the expiry still lands
    run_store.put_worker_session(session(sid, 29), previous_renewed_at=at(0), alive_at=at(30))
    assert run_store.get_worker_session(sid).renewed_at == at(29)


def test_runs_are_read_in_one_batch_in_the_order_asked(run_store):
    # Given 150 runs (more than one BatchGetItem request of 100 keys)
    runs = [run_store.create_flow_run(flow_run()) for _ in range(150)]
    wanted = [run.id for run in reversed(runs)] + ["missing-run", runs[0].id]
    # When they are read in one call, with an unknown id and a duplicate
    found = run_store.get_flow_runs(wanted)
    # Then every existing run comes back once, in the order asked
    assert [run.id for run in found] == [run.id for run in reversed(runs)]
    assert found[0] == run_store.get_flow_run(runs[-1].id)
    assert run_store.get_flow_runs([]) == []

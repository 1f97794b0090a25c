"""Per-worker heartbeats (issue 18.1): one beat renews every run a worker session holds, and the
monitor still crashes exactly the runs nobody renews. On the in-memory fakes and on SQLite."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

_CORE_TESTS = Path(__file__).resolve().parents[1] / "functions" / "core"
if str(_CORE_TESTS) not in sys.path:
    sys.path.insert(0, str(_CORE_TESTS))

from core_fakes import NOW, InMemoryRunQueue, InMemoryRunStore, RecordingMetrics  # noqa: E402
from sluice.exceptions import NotFound, StaleLease, ValidationError  # noqa: E402
from sluice.models import (  # noqa: E402
    ClaimRequest,
    DeploymentCreate,
    FlowRunCreate,
    PoolCreate,
    Running,
    SetStateRequest,
    StateType,
    WorkerLeaseHeartbeat,
)
from sluice_functions import service  # noqa: E402
from sluice_functions.adapters.sqlite import SqliteRunStore  # noqa: E402
from sluice_functions.monitoring import monitor_runs  # noqa: E402
from sluice_functions.orchestration import LeasePolicy  # noqa: E402
from sluice_functions.service.worker_leases import worker_lease_heartbeat  # noqa: E402

LEASES = LeasePolicy(timedelta(seconds=30))
#: Lease + margin: silence longer than this is a crash (30 s + 3 s).
SILENCE = LEASES.duration + LEASES.margin


@dataclass
class Plane:
    store: Any
    queue: InMemoryRunQueue
    metrics: RecordingMetrics

    def run(self, *, retries: int = 0, pool: str = "etl") -> str:
        dep = service.create_deployment(
            DeploymentCreate(flow_name="etl", name=f"nightly-{pool}", entrypoint="f.py:etl",
                             pool=pool, retries=retries),
            store=self.store, queue=self.queue, now=NOW)
        return service.create_flow_run(FlowRunCreate(flow_name="etl", deployment_id=dep.id),
                                       store=self.store, queue=self.queue,
                                       metrics=self.metrics, now=NOW).id

    def claim(self, run_id: str, session: str | None, worker: str = "w1", at=NOW) -> str:
        claimed = service.claim_flow_run(
            run_id, ClaimRequest(worker=worker, claim_id=f"m-{run_id}", session=session),
            store=self.store, metrics=self.metrics, now=at, leases=LEASES)
        service.set_state(run_id, SetStateRequest(state=Running(), transition_id=f"r-{run_id}",
                                                  lease=claimed.lease),
                          store=self.store, queue=self.queue, metrics=self.metrics, now=at)
        return claimed.lease

    def beat(self, session: str, leases: dict[str, str], at, worker: str = "w1",
             pool: str = "etl"):
        request = WorkerLeaseHeartbeat(
            session=session, host="h", version="1", slots=4,
            leases=[{"flow_run_id": run_id, "lease": lease} for run_id, lease in leases.items()])
        return worker_lease_heartbeat(pool, worker, request, store=self.store,
                                      clock=lambda: at, leases=LEASES)

    def monitor(self, at):
        return monitor_runs(store=self.store, queue=self.queue, metrics=self.metrics,
                            heartbeat_timeout=LEASES.duration, now=at)

    def state(self, run_id: str) -> str:
        return self.store.get_flow_run(run_id).state.name


@pytest.fixture(params=["memory", "sqlite"])
def plane(request, tmp_path) -> Plane:
    store = InMemoryRunStore() if request.param == "memory" else SqliteRunStore(
        tmp_path / "store.db")
    plane = Plane(store=store, queue=InMemoryRunQueue(clock=lambda: NOW),
                  metrics=RecordingMetrics())
    for pool in ("etl", "other"):
        service.create_pool(PoolCreate(name=pool), store=store, queue=plane.queue, now=NOW)
    yield plane
    if request.param == "sqlite":
        store.close()


def test_a_worker_that_keeps_beating_keeps_its_runs_however_long_they_run(plane):
    # Given two runs claimed by one worker session
    runs = [plane.run(), plane.run(pool="etl")]
    held = {run_id: plane.claim(run_id, "s1") for run_id in runs}
    # When the worker beats every interval for an hour (ten lease lengths many times over)
    # and the monitor ticks after every beat
    crashed = 0
    for step in range(1, 361):
        at = NOW + timedelta(seconds=10 * step)
        answer = plane.beat("s1", held, at)
        assert all(outcome.renewed and not outcome.stop for outcome in answer.runs.values())
        crashed += plane.monitor(at + timedelta(seconds=9)).crashed
    # Then neither run was crashed
    assert crashed == 0
    assert [plane.state(run_id) for run_id in runs] == ["Running", "Running"]
    # And the monitor copied the session's renewals to the runs (their last sign of life)
    last_beat = NOW + timedelta(seconds=3600)
    assert plane.store.get_flow_run(runs[0]).heartbeat_at >= last_beat - SILENCE


def test_a_beat_reads_its_runs_and_writes_none(plane):
    # Given a run claimed by a session
    run_id = plane.run()
    lease = plane.claim(run_id, "s1")
    before = plane.store.get_flow_run(run_id)
    # When the session beats
    plane.beat("s1", {run_id: lease}, NOW + timedelta(seconds=10))
    # Then the run is as it was (version and heartbeat): only the session was written
    assert plane.store.get_flow_run(run_id) == before
    assert plane.store.get_worker_session("s1").held == {run_id: lease}


def test_a_worker_that_stops_beating_has_its_runs_crashed_after_lease_and_margin(plane):
    # Given a run (one retry left) renewed by its worker's beat at NOW + 10 s
    run_id = plane.run(retries=1)
    lease = plane.claim(run_id, "s1")
    last = NOW + timedelta(seconds=10)
    plane.beat("s1", {run_id: lease}, last)
    # When the worker goes silent
    # Then the run stands until lease + margin have passed since that beat
    assert plane.monitor(last + SILENCE - timedelta(seconds=1)).crashed == 0
    assert plane.state(run_id) == "Running"
    # ... and then it is crashed and retried
    result = plane.monitor(last + SILENCE + timedelta(seconds=1))
    assert result.retried == 1
    assert plane.state(run_id) == "AwaitingRetry"


def test_a_session_whose_lease_expired_cannot_renew_and_its_runs_are_lost(plane):
    # Given a session last renewed at NOW + 10 s
    run_id = plane.run()
    lease = plane.claim(run_id, "s1")
    plane.beat("s1", {run_id: lease}, NOW + timedelta(seconds=10))
    # When its next beat comes after its lease expired (the worker was stopped 31 s)
    late = NOW + timedelta(seconds=10) + LEASES.duration + timedelta(seconds=1)
    # Then the beat is refused with 409 (its worker fences the run)
    with pytest.raises(StaleLease) as refused:
        plane.beat("s1", {run_id: lease}, late)
    assert refused.value.details["reason"] == "session_expired"
    assert refused.value.status_code == 409
    # And the monitor crashes the run once the margin passed too
    assert plane.monitor(late + LEASES.margin).crashed == 1


def test_a_run_dropped_from_the_held_list_is_crashed_and_never_revived(plane):
    # Given two runs of a session, and beats that name only the first from NOW + 10 s on
    kept, dropped = plane.run(), plane.run()
    leases = {kept: plane.claim(kept, "s1"), dropped: plane.claim(dropped, "s1")}
    plane.beat("s1", leases, NOW + timedelta(seconds=5))
    for step in range(1, 5):
        plane.beat("s1", {kept: leases[kept]}, NOW + timedelta(seconds=10 * step))
    # When the session names the dropped run again later
    again = plane.beat("s1", leases, NOW + timedelta(seconds=50))
    # Then it is not renewed but told to stop
    assert again.runs[dropped].stop and not again.runs[dropped].renewed
    assert again.runs[kept].renewed
    # And the monitor crashes it (its own last sign of life is the claim), not the kept one
    result = plane.monitor(NOW + SILENCE + timedelta(seconds=1))
    assert result.crashed == 1
    assert (plane.state(kept), plane.state(dropped)) == ("Running", "Crashed")


def test_a_restarted_worker_does_not_keep_the_old_sessions_runs_alive(plane):
    # Given a run claimed by worker w1's first session, renewed once
    run_id = plane.run()
    lease = plane.claim(run_id, "s1")
    plane.beat("s1", {run_id: lease}, NOW + timedelta(seconds=5))
    # When w1 restarts (new session, same name) and its beats name the old run and lease
    answers = [plane.beat("s2", {run_id: lease}, NOW + timedelta(seconds=10 * step))
               for step in range(1, 5)]
    # Then the new session renews nothing of it and says stop
    assert all(a.runs[run_id].stop and not a.runs[run_id].renewed for a in answers)
    # And the run is crashed once the old session has been silent long enough
    assert plane.monitor(NOW + timedelta(seconds=5) + SILENCE + timedelta(seconds=1)).crashed == 1


def test_the_answer_says_cancel_stop_and_state_for_each_run(plane):
    # Given a cancelled run, a run of another pool, and an unknown id in one beat
    cancelled, foreign = plane.run(), plane.run(pool="other")
    leases = {cancelled: plane.claim(cancelled, "s1"),
              foreign: plane.claim(foreign, "s9"), "nope": "x"}
    service.cancel_flow_run(cancelled, store=plane.store, metrics=plane.metrics, now=NOW)
    # When the etl worker beats
    answer = plane.beat("s1", leases, NOW + timedelta(seconds=5))
    # Then the cancelled run is renewed (so it can stop gracefully) with cancel_requested
    assert answer.runs[cancelled].cancel_requested and answer.runs[cancelled].renewed
    assert answer.runs[cancelled].state.type is StateType.CANCELLING
    # And the others are stopped, their states unsaid (they are not this pool's)
    assert answer.runs[foreign].stop and answer.runs[foreign].state is None
    assert answer.runs["nope"].stop
    assert (answer.lease_seconds, answer.heartbeat_interval_seconds) == (30.0, 10.0)


def test_a_lost_lease_is_answered_stop(plane):
    # Given a run crashed by the monitor and retried: a new attempt will hold it
    run_id = plane.run(retries=1)
    lease = plane.claim(run_id, "s1")
    plane.monitor(NOW + SILENCE + timedelta(seconds=1))
    # When the old holder's (new, fresh) session names it
    answer = plane.beat("s3", {run_id: lease}, NOW + SILENCE + timedelta(seconds=2))
    # Then it must stop
    assert answer.runs[run_id].stop and not answer.runs[run_id].renewed


def test_an_idle_beat_is_the_workers_presence(plane):
    # Given no run, When a worker beats with an empty list
    answer = plane.beat("s1", {}, NOW)
    # Then the pool shows it, with its slots
    assert answer.runs == {}
    (worker,) = plane.store.list_workers("etl")
    assert (worker.name, worker.slots, worker.last_seen) == ("w1", 4, NOW)


def test_a_session_belongs_to_one_worker_and_the_pool_must_exist(plane):
    # (A session is stored once it renews a run: idle beats are presence only, issue 20.)
    run_id = plane.run()
    plane.beat("s1", {run_id: plane.claim(run_id, "s1")}, NOW)
    # When another worker name uses the same session id, Then 409
    with pytest.raises(StaleLease):
        plane.beat("s1", {}, NOW, worker="w2")
    # And an unknown pool is 404
    with pytest.raises(NotFound):
        plane.beat("s4", {}, NOW, pool="nowhere")


def test_a_beat_names_each_run_once():
    # Given the same run twice in one beat, Then the request is refused naming the problem
    with pytest.raises(Exception) as refused:
        WorkerLeaseHeartbeat(session="s", leases=[{"flow_run_id": "a", "lease": "1"},
                                                  {"flow_run_id": "a", "lease": "2"}])
    assert "once" in str(refused.value)
    assert not isinstance(refused.value, ValidationError)  # pydantic's; the API answers 422

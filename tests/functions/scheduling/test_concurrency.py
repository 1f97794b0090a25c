"""Concurrency limits of deployments and pools, enforced at claim (and creation) time."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from conftest import Plane
from sluice.exceptions import Conflict, Throttled
from sluice.models import (
    ClaimRequest,
    CollisionStrategy,
    Completed,
    DeploymentRunRequest,
    PoolCreate,
    Running,
    StateType,
)
from sluice_functions import service
from sluice_functions.monitoring import monitor_runs
from sluice_functions.ports import FlowRunFilter


def runs_of(plane: Plane, dep, count: int):
    return [service.run_deployment(dep.id, DeploymentRunRequest(), **plane.ports,
                                   now=plane.clock()) for _ in range(count)]


def history(plane: Plane, run_id: str) -> list[str]:
    return [state.name for state in plane.store.list_state_history(run_id)]


def test_twenty_simultaneous_claims_never_hold_more_than_the_limit(plane):
    dep = plane.deploy(concurrency_limit=3)
    runs = runs_of(plane, dep, 20)
    lock = threading.Lock()
    holding, most_holding, refusals, errors = [0], [0], [0], []
    most_running = [0]
    done = threading.Event()
    start = threading.Barrier(len(runs))

    def worker(index: int, run_id: str) -> None:
        try:
            start.wait()
            while True:
                try:
                    claim = plane.claim(run_id, worker=f"w{index}", attempt=0)
                    break
                except Throttled:
                    with lock:
                        refusals[0] += 1
                    time.sleep(0.005)
            with lock:
                holding[0] += 1
                most_holding[0] = max(most_holding[0], holding[0])
            plane.report(run_id, Running(), claim.lease, "run")
            time.sleep(0.02)
            with lock:
                holding[0] -= 1
            plane.report(run_id, Completed(), claim.lease, "done")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sample_running() -> None:
        running = FlowRunFilter(deployment_id=dep.id, state_types=frozenset({StateType.RUNNING}))
        while not done.is_set():
            most_running[0] = max(most_running[0], plane.store.count_flow_runs(running))

    sampler = threading.Thread(target=sample_running)
    sampler.start()
    threads = [threading.Thread(target=worker, args=(i, run.id)) for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    sampler.join()
    assert errors == []
    assert 1 <= most_holding[0] <= 3 and most_running[0] <= 3
    assert refusals[0] > 0 and plane.metrics.counter("ConcurrencyLimited") == refusals[0]
    finished = plane.runs(dep)
    assert [run.state.type for run in finished] == [StateType.COMPLETED] * 20
    assert {run.run_count for run in finished} == {1}  # refused claims were never attempts


class TestCollisionStrategies:
    def test_enqueue_refuses_with_a_retryable_answer_and_the_run_waits(self, plane):
        dep = plane.deploy(concurrency_limit=1)
        first, second = runs_of(plane, dep, 2)
        lease = plane.claim(first.id, attempt=0).lease
        with pytest.raises(Throttled) as refused:
            plane.claim(second.id, worker="w2", attempt=0)
        assert refused.value.retry_after > 0
        assert refused.value.details["reason"] == "concurrency_limit"
        assert "deployment etl/nightly is at its concurrency limit (1 of 1" in refused.value.message
        waiting = plane.store.get_flow_run(second.id)
        assert (waiting.state.name, waiting.run_count, waiting.lease) == ("Scheduled", 0, None)
        assert history(plane, second.id) == ["Scheduled"]  # refused before any write
        plane.report(first.id, Completed(), lease, "done")
        assert plane.claim(second.id, worker="w2", attempt=0).flow_run.run_count == 1

    def test_cancel_new_cancels_a_run_that_finds_the_slots_full(self, plane):
        dep = plane.deploy(concurrency_limit=1, collision_strategy=CollisionStrategy.CANCEL_NEW)
        first, second = runs_of(plane, dep, 2)
        plane.claim(first.id, attempt=0)
        with pytest.raises(Conflict, match="cancel_new"):
            plane.claim(second.id, worker="w2", attempt=0)
        cancelled = plane.store.get_flow_run(second.id)
        assert cancelled.state.type is StateType.CANCELLED
        assert "already runs 1 of its 1 allowed runs" in cancelled.state.message

    def test_cancel_new_cancels_a_run_created_over_the_limit_at_once(self, plane):
        dep = plane.deploy(concurrency_limit=1, collision_strategy=CollisionStrategy.CANCEL_NEW)
        (first,) = runs_of(plane, dep, 1)
        plane.claim(first.id, attempt=0)
        sent = len(plane.queue.sent)
        (second,) = runs_of(plane, dep, 1)
        assert second.state.type is StateType.CANCELLED and len(plane.queue.sent) == sent
        later = service.run_deployment(
            dep.id, DeploymentRunRequest(scheduled_at=plane.clock() + timedelta(hours=1)),
            **plane.ports, now=plane.clock())
        assert later.state.type is StateType.SCHEDULED  # judged when it starts, not now

    def test_a_stale_message_never_cancels_a_run(self, plane):
        dep = plane.deploy(concurrency_limit=1, collision_strategy=CollisionStrategy.CANCEL_NEW)
        first, second = runs_of(plane, dep, 2)
        plane.claim(first.id, attempt=0)
        with pytest.raises(Conflict, match="attempt 3"):
            plane.claim(second.id, worker="w2", attempt=3)
        assert plane.store.get_flow_run(second.id).state.type is StateType.SCHEDULED


def test_a_claim_that_loses_the_race_is_undone_to_the_same_attempt(plane):
    dep = plane.deploy(concurrency_limit=1)
    first, second = runs_of(plane, dep, 2)
    plane.claim(first.id, attempt=0)
    store = plane.store
    counts = []

    class RacingStore:
        """The store, with the pre-claim count missing the other claim (a race)."""

        def __getattr__(self, name):
            return getattr(store, name)

        def count_flow_runs(self, flt):
            counts.append(flt)
            return 0 if len(counts) == 1 else store.count_flow_runs(flt)

    with pytest.raises(Throttled):
        service.claim_flow_run(second.id, ClaimRequest(worker="w2", attempt=0), store=RacingStore(),
                               metrics=plane.metrics, now=plane.clock())
    undone = plane.store.get_flow_run(second.id)
    assert (undone.state.type, undone.run_count, undone.lease, undone.worker) == (
        StateType.SCHEDULED, 0, None, None)
    assert undone.enqueued_at == second.enqueued_at  # its message is still the valid one
    assert history(plane, second.id) == ["Scheduled", "Pending", "Scheduled"]
    assert undone.state.message.startswith("waiting for a slot of deployment ")


def test_a_pool_limit_counts_runs_of_every_deployment_in_the_pool(plane):
    service.create_pool(PoolCreate(name="etl", concurrency_limit=2), store=plane.store,
                        queue=plane.queue, now=plane.clock())
    runs = runs_of(plane, plane.deploy(name="a"), 2) + runs_of(plane, plane.deploy(name="b"), 1)
    plane.claim(runs[0].id, attempt=0)
    plane.claim(runs[2].id, attempt=0)
    with pytest.raises(Throttled) as refused:
        plane.claim(runs[1].id, attempt=0)
    assert refused.value.details["scope"] == "pool"


def test_a_crashed_run_frees_its_slot(plane):
    dep = plane.deploy(concurrency_limit=1)
    first, second = runs_of(plane, dep, 2)
    plane.claim(first.id, attempt=0)
    with pytest.raises(Throttled):
        plane.claim(second.id, attempt=0)
    plane.clock.advance(seconds=34)  # past the 30 s lease and its 3 s margin
    assert monitor_runs(**plane.ports, now=plane.clock(), heartbeat_timeout=30).crashed == 1
    assert plane.claim(second.id, attempt=0).flow_run.state.type is StateType.PENDING


def claim_for_worker(plane: Plane, run_id: str, worker: str = "w2"):
    """A claim as workers make it: asking for a fresh message if the run must wait."""
    return service.claim_flow_run(run_id, ClaimRequest(worker=worker, attempt=0, requeue=True),
                                  **plane.ports, now=plane.clock())


def test_a_waiting_run_gets_a_fresh_message_so_waiting_never_dead_letters_it(plane):
    # Given a deployment at its limit and a second run waiting
    dep = plane.deploy(concurrency_limit=1)
    first, second = runs_of(plane, dep, 2)
    lease = plane.claim(first.id, attempt=0).lease
    sent = plane.queue.sends_of(second.id)
    # When a claim without `requeue` is refused, Then nothing is sent (the caller keeps its own)
    with pytest.raises(Throttled) as plain:
        plane.claim(second.id, attempt=0)
    assert "requeued" not in plain.value.details and plane.queue.sends_of(second.id) == sent
    # When a worker's claim is refused, Then a fresh message is due in 5 s and the answer says so
    with pytest.raises(Throttled) as refused:
        claim_for_worker(plane, second.id)
    assert refused.value.details["requeued"] is True
    assert plane.queue.sends_of(second.id) == [*sent, (0, 5)]
    # and the run's last enqueue is refreshed only every few minutes (one write, not one each)
    assert plane.store.get_flow_run(second.id).enqueued_at == second.enqueued_at
    enqueued = plane.clock.advance(minutes=6)
    with pytest.raises(Throttled):
        claim_for_worker(plane, second.id)
    assert plane.store.get_flow_run(second.id).enqueued_at == enqueued
    # so the lost-message repair does not add copies while it waits
    plane.clock.advance(minutes=19)
    sends = len(plane.queue.sends_of(second.id))
    monitor_runs(**plane.ports, now=plane.clock(), heartbeat_timeout=3600)
    assert len(plane.queue.sends_of(second.id)) == sends
    # When the slot frees, Then the waiting run is claimed as its first attempt
    plane.report(first.id, Running(), lease, "r")
    plane.report(first.id, Completed(), lease, "c")
    claimed = claim_for_worker(plane, second.id)
    assert claimed.flow_run.state.type is StateType.PENDING and claimed.flow_run.run_count == 1


def test_a_requeue_never_touches_a_run_that_moved_on(plane):
    # Given a run refused for a full slot and then cancelled while its claim was answered
    dep = plane.deploy(concurrency_limit=1)
    first, second = runs_of(plane, dep, 2)
    plane.claim(first.id, attempt=0)
    refusal = Throttled("full", details={"reason": "concurrency_limit"})
    service.cancel_flow_run(second.id, store=plane.store, metrics=plane.metrics, now=plane.clock())
    sent = plane.queue.sends_of(second.id)
    # When it is requeued, Then nothing is sent and the refusal is not marked requeued
    from sluice_functions.service.concurrency import requeue_waiting

    requeue_waiting(second.id, refusal, **plane.ports, now=plane.clock())
    assert plane.queue.sends_of(second.id) == sent and "requeued" not in refusal.details


def test_a_claim_records_the_limits_it_was_admitted_under(plane):
    # Given a deployment with a limit in a pool with one, and one without any
    service.create_pool(PoolCreate(name="etl", concurrency_limit=5), store=plane.store,
                        queue=plane.queue, now=plane.clock())
    [limited] = runs_of(plane, plane.deploy(name="limited", concurrency_limit=2), 1)
    [free] = runs_of(plane, plane.deploy(name="free"), 1)
    service.create_pool(PoolCreate(name="etl"), store=plane.store, queue=plane.queue,
                        now=plane.clock())
    # When both are claimed, Then each holds a slot of exactly the limits that admitted it
    assert plane.claim(limited.id, attempt=0).flow_run.slot_scopes == ("deployment",)
    assert plane.claim(free.id, attempt=0).flow_run.slot_scopes == ()


def test_a_run_that_changes_between_admission_and_claim_is_admitted_again(plane):
    # Given a deployment at its limit, and a second run read (for admission) in an older
    # version that did not look claimable (an earlier attempt still held it)
    dep = plane.deploy(concurrency_limit=1)
    first, second = runs_of(plane, dep, 2)
    plane.claim(first.id, attempt=0)
    store = plane.store
    reads = []

    class StaleFirstRead:
        def __getattr__(self, name):
            return getattr(store, name)

        def get_flow_run(self, run_id):
            run = store.get_flow_run(run_id)
            reads.append(run_id)
            if run_id == second.id and len(reads) == 1:
                return run.model_copy(update={"state": Running(), "lease": "old",
                                              "version": run.version - 1})
            return run

    # When it is claimed, Then the claim is admitted against the run as written: refused
    with pytest.raises(Throttled):
        service.claim_flow_run(second.id, ClaimRequest(worker="w2", attempt=0),
                               store=StaleFirstRead(), metrics=plane.metrics, now=plane.clock())
    assert plane.store.get_flow_run(second.id).state.type is StateType.SCHEDULED

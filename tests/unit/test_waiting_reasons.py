"""Why a run waits (issue 15): the state message of a run refused for a concurrency limit,
first-in-first-out admission of waiting runs, and the reason in a Late run's message.

The claims go through the real use cases on the SQLite store; the admission order also runs on
the DynamoDB store under moto, whose run indexes answer the "queued ahead" count there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from sluice.exceptions import Throttled
from sluice.models import (
    ClaimRequest,
    Completed,
    Deployment,
    DeploymentCreate,
    DeploymentRunRequest,
    FlowRun,
    PoolCreate,
    Running,
    SetStateRequest,
    StateType,
    Worker,
)
from sluice_functions import service
from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteRunQueue, SqliteRunStore
from sluice_functions.config import table_key_schema
from sluice_functions.monitoring import monitor_runs
from sluice_functions.service import concurrency
from sluice_functions.service.queueing import HELD_BY

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
POOL = "etl"


class Plane:
    """A control plane on one store, with a clock the test moves by hand."""

    def __init__(self, store: Any, queue: SqliteRunQueue) -> None:
        self.store, self.queue, self.metrics = store, queue, InMemoryMetrics()
        self.now = T0
        self.pool(concurrency_limit=None)

    @property
    def ports(self) -> dict[str, Any]:
        return {"store": self.store, "queue": self.queue, "metrics": self.metrics}

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def pool(self, *, concurrency_limit: int | None) -> None:
        service.create_pool(PoolCreate(name=POOL, concurrency_limit=concurrency_limit),
                            store=self.store, queue=self.queue, now=self.now)

    def deploy(self, name: str = "nightly", **fields: Any) -> Deployment:
        request = DeploymentCreate(flow_name="etl", name=name, entrypoint="flows.py:etl",
                                   pool=POOL, **fields)
        return service.create_deployment(request, store=self.store, queue=self.queue,
                                         now=self.now)

    def run_now(self, deployment: Deployment) -> FlowRun:
        """A run due now; the clock then moves a second, so runs are ordered by creation."""
        run = service.run_deployment(deployment.id, DeploymentRunRequest(), **self.ports,
                                     now=self.now)
        self.advance(seconds=1)
        return run

    def claim(self, run: FlowRun, worker: str = "w1"):
        return service.claim_flow_run(run.id, ClaimRequest(worker=worker, attempt=0),
                                      store=self.store, metrics=self.metrics, now=self.now)

    def refusal(self, run: FlowRun) -> Throttled:
        with pytest.raises(Throttled) as refused:
            self.claim(run)
        return refused.value

    def complete(self, run: FlowRun, lease: str) -> None:
        """Report the claimed `run` Running, then Completed: its slot frees."""
        for index, state in enumerate((Running(), Completed())):
            service.set_state(run.id, SetStateRequest(state=state, lease=lease,
                                                      transition_id=f"{run.id}-{index}"),
                              **self.ports, now=self.now)

    def get(self, run: FlowRun) -> FlowRun:
        return self.store.get_flow_run(run.id)

    def change(self, run: FlowRun, **fields: Any) -> FlowRun:
        current = self.get(run)
        return self.store.update_flow_run(current.model_copy(update=fields))


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteRunQueue]:
    queue = SqliteRunQueue(tmp_path / "queue.db")
    yield queue
    queue.close()


@pytest.fixture
def plane(tmp_path: Path, queue: SqliteRunQueue) -> Iterator[Plane]:
    store = SqliteRunStore(tmp_path / "store.db")
    yield Plane(store, queue)
    store.close()


@pytest.fixture(params=["sqlite", "dynamodb"])
def any_plane(request: pytest.FixtureRequest, tmp_path: Path,
              queue: SqliteRunQueue) -> Iterator[Plane]:
    """The same plane on each store the control plane ships with."""
    if request.param == "sqlite":
        store = SqliteRunStore(tmp_path / "store.db")
        yield Plane(store, queue)
        store.close()
        return
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="sluice-waiting", **table_key_schema())
        yield Plane(DynamoRunStore(client, "sluice-waiting", retention_days=30), queue)


# ---- the waiting run's state message ----------------------------------------------------------


def test_a_run_refused_for_a_full_deployment_says_why_in_its_state_message(any_plane):
    # Given a deployment limited to one run, running one
    dep = any_plane.deploy(concurrency_limit=1)
    first, second = any_plane.run_now(dep), any_plane.run_now(dep)
    any_plane.claim(first)
    # When the second run's claim is refused
    any_plane.refusal(second)
    # Then it still waits in Scheduled, and its message says for what
    waiting = any_plane.get(second).state
    assert (waiting.type, waiting.name) == (StateType.SCHEDULED, "Scheduled")
    assert waiting.message == "waiting for a slot of deployment etl/nightly: 1/1 running"


def test_the_waiting_message_is_written_once_not_at_every_refused_claim(plane):
    # Given a run refused once for a full pool
    plane.pool(concurrency_limit=1)
    dep = plane.deploy()
    first, second = plane.run_now(dep), plane.run_now(dep)
    plane.claim(first)
    plane.refusal(second)
    written = plane.get(second)
    # When its claim is refused again for the same reason
    plane.advance(seconds=5)
    plane.refusal(second)
    # Then nothing was written: same version, and no state history entry at any time
    assert plane.get(second).version == written.version
    assert written.state.message == "waiting for a slot of pool etl: 1/1 running"
    assert [s.name for s in plane.store.list_state_history(second.id)] == ["Scheduled"]


def test_a_late_run_stays_late_while_it_waits_and_its_message_says_why(plane):
    # Given a run waiting for a deployment slot, renamed Late by the monitor
    dep = plane.deploy(concurrency_limit=1)
    first, second = plane.run_now(dep), plane.run_now(dep)
    plane.claim(first)
    plane.refusal(second)
    plane.advance(seconds=30)
    monitor_runs(**plane.ports, heartbeat_timeout=600, now=plane.now)
    late = plane.get(second)
    # When its claim is refused again
    plane.refusal(second)
    # Then it keeps the Late name and the monitor's message, which names the limit
    assert late.state.name == "Late"
    assert late.state.message == ("not started 31 s after its scheduled time; waiting for a "
                                  "slot of deployment etl/nightly: 1/1 running")
    assert plane.get(second).version == late.version


def test_the_waiting_message_follows_a_change_of_reason_and_keeps_the_late_name(plane):
    # Given a Late run waiting for a full deployment
    dep = plane.deploy(concurrency_limit=1)
    first, second, third = plane.run_now(dep), plane.run_now(dep), plane.run_now(dep)
    lease = plane.claim(first).lease
    plane.refusal(third)
    plane.advance(seconds=30)
    monitor_runs(**plane.ports, heartbeat_timeout=600, now=plane.now)
    # When a slot frees but an earlier run is queued ahead of it
    plane.complete(first, lease)
    refusal = plane.refusal(third)
    # Then its message says so, and it is still Late
    state = plane.get(third).state
    assert (state.name, state.message) == (
        "Late", "waiting for a slot of deployment etl/nightly: 0/1 running, 1 queued ahead")
    assert refusal.details["queued_ahead"] == 1
    assert "taken by 1 earlier run(s) queued ahead" in str(refusal)


def test_an_admitted_run_replaces_the_waiting_message_with_its_own_states(plane):
    # Given a run that waited for a slot
    dep = plane.deploy(concurrency_limit=1)
    first, second = plane.run_now(dep), plane.run_now(dep)
    lease = plane.claim(first).lease
    plane.refusal(second)
    # When the slot frees and it is claimed
    plane.complete(first, lease)
    plane.claim(second)
    # Then its state is Pending, with no waiting message left
    state = plane.get(second).state
    assert state.type is StateType.PENDING
    assert "waiting" not in (state.message or "")


# ---- first in, first out ----------------------------------------------------------------------


def test_when_a_slot_frees_the_earliest_waiting_run_starts_first(any_plane):
    # Given three runs of a deployment limited to one, the first running
    dep = any_plane.deploy(concurrency_limit=1)
    first, second, third = (any_plane.run_now(dep) for _ in range(3))
    lease = any_plane.claim(first).lease
    # When the first finishes and the third's message happens to be delivered before the second's
    any_plane.complete(first, lease)
    refusal = any_plane.refusal(third)
    # Then the third waits behind the second, which is admitted
    assert refusal.details["queued_ahead"] == 1
    assert any_plane.claim(second).flow_run.state.type is StateType.PENDING


def test_a_pool_admits_in_scheduled_order_across_deployments(any_plane):
    # Given a pool limited to one run, an older run of deployment a waiting behind a running one
    any_plane.pool(concurrency_limit=1)
    a, b = any_plane.deploy("a"), any_plane.deploy("b")
    running, older, newer = any_plane.run_now(a), any_plane.run_now(a), any_plane.run_now(b)
    lease = any_plane.claim(running).lease
    # When the slot frees
    any_plane.complete(running, lease)
    # Then the newer run of b waits for the older run of a
    assert any_plane.refusal(newer).details["scope"] == "pool"
    any_plane.claim(older)


def test_held_runs_and_in_process_retries_do_not_hold_the_queue_back(any_plane):
    # Given, before a run, an earlier due run held by a backfill and one retrying in its process
    dep = any_plane.deploy(concurrency_limit=1)
    held, retrying, run = (any_plane.run_now(dep) for _ in range(3))
    held_state = any_plane.get(held).state.model_copy(update={"details": {HELD_BY: "backfill"}})
    any_plane.change(held, state=held_state)
    any_plane.change(retrying, lease="lease-of-its-process")
    # When the run is claimed
    claimed = any_plane.claim(run)
    # Then it is admitted: neither can be claimed from the queue, so neither is ahead of it
    assert claimed.flow_run.state.type is StateType.PENDING


def test_runs_due_later_are_not_ahead(plane):
    # Given a run whose retry is due later than a newer run
    dep = plane.deploy(concurrency_limit=1)
    retry_later, run = plane.run_now(dep), plane.run_now(dep)
    plane.change(retry_later, scheduled_at=plane.now + timedelta(minutes=10))
    # When the newer run is claimed
    claimed = plane.claim(run)
    # Then it is admitted
    assert claimed.flow_run.id == run.id


def test_a_pool_does_not_wait_for_runs_blocked_by_their_own_deployment(plane):
    # Given a pool limited to two, a deployment limited to one running one, and its next run
    # refused for the deployment's slot
    plane.pool(concurrency_limit=2)
    slow, other = plane.deploy("slow", concurrency_limit=1), plane.deploy("other")
    busy, blocked, newer = plane.run_now(slow), plane.run_now(slow), plane.run_now(other)
    plane.claim(busy)
    assert plane.refusal(blocked).details["scope"] == "deployment"
    # When a run of another deployment claims the pool's free slot
    claimed = plane.claim(newer)
    # Then it gets it: the blocked run could not have used it
    assert claimed.flow_run.state.type is StateType.PENDING


def test_the_limit_is_never_exceeded_by_the_queue_order(plane):
    # Given a deployment limited to two with five runs due
    dep = plane.deploy(concurrency_limit=2)
    runs = [plane.run_now(dep) for _ in range(5)]
    # When every run tries to claim, newest first
    admitted = []
    for run in reversed(runs):
        try:
            plane.claim(run)
            admitted.append(run.id)
        except Throttled:
            pass
    # Then exactly the two oldest are admitted
    assert admitted == [runs[1].id, runs[0].id]


# ---- a Late run's message names what its pool's workers tell ----------------------------------


def late_message(plane: Plane, run: FlowRun) -> str:
    plane.now = run.scheduled_at + timedelta(seconds=40)
    monitor_runs(**plane.ports, heartbeat_timeout=600, now=plane.now)
    state = plane.get(run).state
    assert state.name == "Late"
    return state.message


def test_a_late_run_in_a_pool_no_worker_ever_polled_says_how_to_start_one(plane):
    run = plane.run_now(plane.deploy())
    assert late_message(plane, run) == (
        "not started 40 s after its scheduled time; no worker has polled pool 'etl' "
        "(start one: sluice worker start --pool etl)")


def test_a_late_run_in_a_pool_whose_workers_went_away_says_when_one_was_last_seen(plane):
    run = plane.run_now(plane.deploy())
    plane.store.upsert_worker(Worker(name="w1", pool=POOL,
                                     last_seen=run.scheduled_at - timedelta(minutes=12)))
    assert late_message(plane, run) == (
        "not started 40 s after its scheduled time; no worker of pool 'etl' online (last seen "
        "12 min ago; start one: sluice worker start --pool etl)")


def test_a_late_run_in_a_pool_with_workers_online_says_they_are_busy_or_limited(plane):
    run = plane.run_now(plane.deploy())
    for name in ("w1", "w2"):
        plane.store.upsert_worker(Worker(name=name, pool=POOL, last_seen=run.scheduled_at))
    assert late_message(plane, run) == (
        "not started 40 s after its scheduled time; 2 workers of pool 'etl' online; all busy "
        "or at a concurrency limit")


def test_the_monitor_reads_a_pools_workers_once_per_tick(plane):
    # Given three late runs of one pool
    dep = plane.deploy()
    runs = [plane.run_now(dep) for _ in range(3)]
    reads = []
    store = plane.store

    class CountingStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def list_workers(self, pool: str):
            reads.append(pool)
            return store.list_workers(pool)

    # When one monitor tick marks them Late
    plane.advance(minutes=1)
    result = monitor_runs(store=CountingStore(), queue=plane.queue, metrics=plane.metrics,
                          heartbeat_timeout=600, now=plane.now)
    # Then the pool's workers were read once
    assert result.late == len(runs)
    assert reads == [POOL]


def test_the_message_counts_every_run_queued_ahead_not_only_those_taking_free_slots(plane):
    # Given a free slot of a deployment limited to one, and three runs waiting for it
    dep = plane.deploy(concurrency_limit=1)
    runs = [plane.run_now(dep) for _ in range(3)]
    # When the newest one is refused
    plane.refusal(runs[-1])
    # Then its message counts both runs ahead of it
    assert plane.get(runs[-1]).state.message == (
        "waiting for a slot of deployment etl/nightly: 0/1 running, 2 queued ahead")


def test_a_queue_longer_than_one_read_is_shown_as_a_lower_bound(plane, monkeypatch):
    # Given more runs ahead than one admission reads
    monkeypatch.setattr(concurrency, "MAX_AHEAD_SCANNED", 2)
    dep = plane.deploy(concurrency_limit=1)
    runs = [plane.run_now(dep) for _ in range(4)]
    # When the newest one is refused
    refusal = plane.refusal(runs[-1])
    # Then the count says "at least"
    assert refusal.details["queued_ahead"] == 2
    assert plane.get(runs[-1]).state.message.endswith("0/1 running, 2+ queued ahead")

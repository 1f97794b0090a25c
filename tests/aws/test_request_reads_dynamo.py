"""Issue 20, reads per short run: the strongly consistent GetItems (1 read unit each) that a
deployment run's three requests cost on DynamoDB (moto), counted with a botocore event hook,
and the same reads counted at the store port on SQLite (the embedded server's store).

Pinned: create 1 (the deployment, by name), claim-and-start 3 (the run, its pool, its
deployment), events batch with the final state 1 (the run). Each step read its pool and
deployment up to three times, and its run twice, before they were shared within the request
(`service.request_reads`, and the run passed down to the code that writes it)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sluice.models import DeploymentCreate, PoolCreate, PoolUpdate
from sluice_functions import service
from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteLogSink, SqliteRunQueue, SqliteRunStore
from sluice_functions.api import build_app
from sluice_functions.automations.dispatch import NoDispatch
from sluice_functions.ports import ControlPlanePorts
from sluice_functions.service.event_log import attach_recorder
from sluice_functions.service.pools import update_pool
from sluice_functions.service.request_reads import request_reads

_API_TESTS = Path(__file__).parents[1] / "functions"
if str(_API_TESTS) not in sys.path:
    sys.path.insert(0, str(_API_TESTS))
from api.events import LambdaContext, http_event, read_answer  # noqa: E402 - the API tests' events

REGION = "us-east-1"
TABLE = "sluice-request-reads"
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
#: The store methods that are one GetItem each on DynamoDB.
COUNTED_READS = ("get_flow_run", "get_pool", "get_deployment", "get_deployment_by_name")


class CountingStore:
    """A store counting its single-record reads (the SQLite side of the pin)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in COUNTED_READS:
            return attribute

        def counted(*args: Any) -> Any:
            self.reads[name] += 1
            return attribute(*args)

        return counted


class Plane:
    """The real API app over one store, with the event recorder the handlers attach."""

    def __init__(self, ports: ControlPlanePorts, count: Any) -> None:
        self.ports = ports
        self.count = count  # () -> reads so far
        attach_recorder(ports, NoDispatch())
        self.app = build_app(ports, clock=lambda: NOW)

    def post(self, path: str, body: Any) -> Any:
        answer = read_answer(self.app.resolve(http_event("POST", path, body=body),
                                              LambdaContext()))
        assert answer.status < 300, answer.json
        return answer.json

    def reads_of(self, path: str, body: Any) -> tuple[int, Any]:
        before = self.count()
        answer = self.post(path, body)
        return self.count() - before, answer

    def deploy(self, *, concurrency_limit: int | None = None) -> None:
        service.create_pool(PoolCreate(name="etl"), store=self.ports.store,
                            queue=self.ports.queue, now=NOW)
        service.create_deployment(
            DeploymentCreate(flow_name="etl", name="nightly", entrypoint="f.py:etl", pool="etl",
                             concurrency_limit=concurrency_limit),
            store=self.ports.store, queue=self.ports.queue, now=NOW)

    def short_run(self) -> tuple[int, int, int]:
        """Create, claim (start, with the deployment) and finish one run: reads per request."""
        create, run = self.reads_of("/deployments/etl/nightly/runs", {})
        claim, claimed = self.reads_of(f"/pools/etl/flow-runs/{run['id']}/claim", {
            "worker": "w1", "attempt": 0, "claim_id": "m-1", "session": "s1", "start": True,
            "with_deployment": True, "requeue": True})
        assert claimed["flow_run"]["state"]["type"] == "RUNNING"
        final, accepted = self.reads_of(f"/pools/etl/flow-runs/{run['id']}/events", {
            "lease": claimed["lease"], "transition_id": "t-final",
            "state": {"type": "COMPLETED", "name": "Completed"},
            "finished_task_runs": [{
                "id": "t1", "flow_run_id": run["id"], "task_name": "step", "name": "step-0",
                "state": {"type": "COMPLETED", "name": "Completed"}, "version": 2}]})
        assert accepted["transition"]["status"] == "ACCEPT"
        return create, claim, final


@pytest.fixture
def dynamo_plane(dynamodb: Any, tmp_path: Path) -> Iterator[Plane]:
    calls: Counter[str] = Counter()
    dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update(
        [model.name]))
    queue = SqliteRunQueue(tmp_path / "queue.db")
    ports = ControlPlanePorts(store=DynamoRunStore(dynamodb, TABLE), queue=queue,
                              logs=SqliteLogSink(tmp_path / "logs.db"),
                              metrics=InMemoryMetrics())
    yield Plane(ports, lambda: calls["GetItem"])
    queue.close()


@pytest.fixture
def sqlite_plane(tmp_path: Path) -> Iterator[Plane]:
    store = CountingStore(SqliteRunStore(tmp_path / "runs.db"))
    queue = SqliteRunQueue(tmp_path / "queue.db")
    ports = ControlPlanePorts(store=store, queue=queue, logs=SqliteLogSink(tmp_path / "logs.db"),
                              metrics=InMemoryMetrics())
    yield Plane(ports, lambda: sum(store.reads.values()))
    queue.close()


@pytest.mark.parametrize("plane_name", ["dynamo_plane", "sqlite_plane"])
def test_a_short_run_reads_each_record_once_per_request(plane_name, request):
    # Given a deployment in a pool, neither with a concurrency limit
    plane = request.getfixturevalue(plane_name)
    plane.deploy()
    # When a run is created, claimed with start, and finished with its last events batch
    create, claim, final = plane.short_run()
    # Then the create reads the deployment once (by name), the claim its run, pool and
    # deployment once each, and the final batch the run once (the event's deployment name is
    # the process's, read by the create)
    assert (create, claim, final) == (1, 3, 1)


def test_a_claim_under_concurrency_limits_still_reads_each_record_once(dynamo_plane):
    # Given a deployment with a concurrency limit (the claim is confirmed after its write,
    # then started in a second write)
    dynamo_plane.deploy(concurrency_limit=2)
    # When a run is created, claimed with start and finished
    create, claim, final = dynamo_plane.short_run()
    # Then the limit costs its count queries (and the slot holders' batch read), not more
    # reads of the run, pool or deployment
    assert (create, claim, final) == (1, 3, 1)


def test_a_paused_pool_refuses_the_claim_after_reading_the_run_and_the_pool(dynamo_plane):
    # Given a run of a pool that is then paused
    dynamo_plane.deploy()
    run = dynamo_plane.post("/deployments/etl/nightly/runs", {})
    update_pool("etl", PoolUpdate(paused=True), store=dynamo_plane.ports.store,
                        queue=dynamo_plane.ports.queue, now=NOW)
    before = dynamo_plane.count()
    # When a worker claims it
    answer = read_answer(dynamo_plane.app.resolve(http_event(
        "POST", f"/pools/etl/flow-runs/{run['id']}/claim",
        body={"worker": "w1", "attempt": 0, "claim_id": "m-1", "start": True}), LambdaContext()))
    # Then it is refused (the pause read fresh in this request), at two reads
    assert answer.status == 429 and answer.json["details"]["reason"] == "pool_paused"
    assert dynamo_plane.count() - before == 2


def test_a_refused_claim_is_decided_again_on_a_fresh_read(dynamo_plane):
    # Given a run already claimed and started by another worker's message
    dynamo_plane.deploy()
    run = dynamo_plane.post("/deployments/etl/nightly/runs", {})
    dynamo_plane.post(f"/pools/etl/flow-runs/{run['id']}/claim",
                      {"worker": "w1", "attempt": 0, "claim_id": "m-1", "start": True})
    before = dynamo_plane.count()
    # When a second copy of the message is claimed
    answer = read_answer(dynamo_plane.app.resolve(http_event(
        "POST", f"/pools/etl/flow-runs/{run['id']}/claim",
        body={"worker": "w2", "attempt": 0, "claim_id": "m-2", "start": True}), LambdaContext()))
    # Then it is refused (the worker deletes that message) on a second read of the run: the
    # run twice and its pool once
    assert answer.status == 409
    assert dynamo_plane.count() - before == 3
    assert dynamo_plane.ports.store.get_flow_run(run["id"]).worker == "w1"


def test_request_reads_forget_what_they_read_when_the_request_writes_a_pool(tmp_path):
    # Given one request's reads over a store with a pool, read twice (one store read)
    store = CountingStore(SqliteRunStore(tmp_path / "runs.db"))
    queue = SqliteRunQueue(tmp_path / "queue.db")
    service.create_pool(PoolCreate(name="etl"), store=store, queue=queue, now=NOW)
    reads = request_reads(store)
    store.reads.clear()
    assert reads.get_pool("etl").paused is False and reads.get_pool("etl").paused is False
    assert store.reads["get_pool"] == 1
    # When the same request writes the pool through them
    reads.upsert_pool(store.get_pool("etl").model_copy(update={"paused": True}))
    # Then the next read is the store's, and sees the write
    assert reads.get_pool("etl").paused is True
    assert store.reads["get_pool"] == 3
    queue.close()

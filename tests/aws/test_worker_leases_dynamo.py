"""Per-worker heartbeats on the DynamoDB store under moto, through the real API app: what one
beat costs in DynamoDB requests (independent of how many runs it renews, but for the batch
read), and the fencing verdicts of the monitor on that store."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.models import ClaimRequest, DeploymentCreate, FlowRunCreate, PoolCreate
from sluice_functions import service
from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.adapters.aws.dynamo_table import MAX_BATCH_GET_KEYS
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteLogSink, SqliteRunQueue
from sluice_functions.api import build_app
from sluice_functions.monitoring import monitor_runs
from sluice_functions.orchestration import LeasePolicy
from sluice_functions.ports import ControlPlanePorts

_API_TESTS = Path(__file__).parents[1] / "functions"
if str(_API_TESTS) not in sys.path:
    sys.path.insert(0, str(_API_TESTS))
from api.events import LambdaContext, http_event, read_answer  # noqa: E402 - the API tests' events

REGION = "us-east-1"
TABLE = "sluice-worker-leases"
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
LEASES = LeasePolicy(timedelta(seconds=30))


class CountingClient:
    """The DynamoDB client, counting the requests the store makes by operation."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def plane(dynamodb: Any, tmp_path: Path) -> Iterator[Any]:
    client = CountingClient(dynamodb)
    store = DynamoRunStore(client, TABLE)
    queue = SqliteRunQueue(tmp_path / "queue.db")
    ports = ControlPlanePorts(store=store, queue=queue, logs=SqliteLogSink(tmp_path / "l.db"),
                              metrics=InMemoryMetrics())
    clock = Clock()
    app = build_app(ports, clock=clock, leases=LEASES)
    service.create_pool(PoolCreate(name="etl"), store=store, queue=queue, now=NOW)
    dep = service.create_deployment(
        DeploymentCreate(flow_name="etl", name="n", entrypoint="f.py:etl", pool="etl"),
        store=store, queue=queue, now=NOW)
    yield app, ports, client, clock, dep
    queue.close()


def _call(app: Any, path: str, body: Any) -> tuple[int, Any]:
    answer = read_answer(app.resolve(http_event("POST", path, body=body), LambdaContext()))
    return answer.status, answer.json


def _claimed_runs(ports: ControlPlanePorts, dep: Any, count: int, session: str) -> dict[str, str]:
    leases = {}
    for i in range(count):
        run = service.create_flow_run(FlowRunCreate(flow_name="etl", deployment_id=dep.id),
                                      store=ports.store, queue=ports.queue, metrics=ports.metrics,
                                      now=NOW)
        claim = service.claim_flow_run(run.id, ClaimRequest(worker="w1", claim_id=f"m{i}",
                                                            session=session),
                                       store=ports.store, metrics=ports.metrics, now=NOW,
                                       leases=LEASES)
        leases[run.id] = claim.lease
    return leases


def test_one_beat_costs_the_same_writes_for_any_number_of_runs(plane):
    app, ports, client, clock, dep = plane
    # Given 150 runs claimed by one worker session (more than one BatchGetItem)
    leases = _claimed_runs(ports, dep, 150, "s1")
    body = {"session": "s1", "slots": 0,
            "leases": [{"flow_run_id": r, "lease": lease} for r, lease in leases.items()]}
    # When the worker beats once through the API
    client.calls.clear()
    clock.now = NOW + timedelta(seconds=10)
    status, answer = _call(app, "/pools/etl/workers/w1/heartbeat", body)
    # Then every run is renewed
    assert status == 200, answer
    assert all(outcome["renewed"] for outcome in answer["runs"].values())
    assert len(answer["runs"]) == 150
    # with one session write and one worker write, whatever the number of runs, and the runs
    # read in batches of BatchGetItem's 100 keys (no run written)
    batches = -(-150 // MAX_BATCH_GET_KEYS)
    assert client.calls["put_item"] == 1 and client.calls["update_item"] == 1
    assert client.calls["batch_get_item"] == batches
    assert client.calls["transact_write_items"] == 0
    print(f"\none beat of 150 runs: {dict(client.calls)}")


def test_the_monitor_on_dynamodb_keeps_renewed_runs_and_crashes_dropped_ones(plane):
    app, ports, client, clock, dep = plane
    # Given two runs of a session, the second dropped from its beats
    leases = _claimed_runs(ports, dep, 2, "s1")
    kept, dropped = list(leases)
    for step in range(1, 8):
        clock.now = NOW + timedelta(seconds=10 * step)
        status, answer = _call(app, "/pools/etl/workers/w1/heartbeat", {
            "session": "s1", "leases": [{"flow_run_id": kept, "lease": leases[kept]}]})
        assert status == 200 and answer["runs"][kept]["renewed"]
    # When the monitor ticks well after the lease + margin of the dropped run's claim
    result = monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                          heartbeat_timeout=LEASES.duration, now=clock.now)
    # Then only the dropped run is crashed
    assert result.crashed == 1
    assert ports.store.get_flow_run(dropped).state.name == "Crashed"
    assert ports.store.get_flow_run(kept).state.type.value == "PENDING"


def test_an_expired_session_is_refused_with_409_naming_the_fix(plane):
    app, ports, client, clock, dep = plane
    leases = _claimed_runs(ports, dep, 1, "s1")
    body = {"session": "s1", "leases": [{"flow_run_id": r, "lease": lease}
                                        for r, lease in leases.items()]}
    assert _call(app, "/pools/etl/workers/w1/heartbeat", body)[0] == 200
    # When the next beat comes after the session's lease ran out
    clock.now = NOW + LEASES.duration + timedelta(seconds=1)
    status, answer = _call(app, "/pools/etl/workers/w1/heartbeat", body)
    # Then 409 says why and what to do
    assert status == 409, answer
    assert answer["details"]["reason"] == "session_expired"
    assert "new session" in answer["message"]


def test_bad_beats_are_refused_with_4xx(plane):
    app, *_ = plane
    too_many = {"session": "s1", "leases": [{"flow_run_id": f"r{i}", "lease": "l"}
                                            for i in range(501)]}
    assert _call(app, "/pools/etl/workers/w1/heartbeat", too_many)[0] in (413, 422)
    assert _call(app, "/pools/etl/workers/w1/heartbeat", {"session": "a b"})[0] == 422
    assert _call(app, "/pools/nowhere/workers/w1/heartbeat", {"session": "s"})[0] == 404
    assert _call(app, "/pools/etl/workers/w%E2%80%AE/heartbeat", {"session": "s"})[0] == 422

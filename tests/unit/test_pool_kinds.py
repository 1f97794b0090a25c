"""Pool kinds (worker, lambda, fargate): the models, both stores, the API's refusals (a type
change, a deployment too long for Lambda), the fargate start-up grace, and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from functions.api.conftest import NOW, Api, Clock, close_ports, sqlite_ports
from sluice.models import LAMBDA_MAX_RUN_SECONDS, POOL_TYPES, DeploymentCreate, Pool, PoolCreate
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.adapters.sqlite import SqliteRunQueue, SqliteRunStore
from sluice_functions.api import build_app
from sluice_functions.service.attempts import FARGATE_STARTUP_GRACE_SECONDS
from sluice_functions.service.pools import create_pool

# ---- models ------------------------------------------------------------------------------------


def test_pool_types_are_the_three_kinds_and_worker_is_the_default():
    assert POOL_TYPES == ("worker", "lambda", "fargate")
    assert PoolCreate(name="etl").type == "worker"
    assert PoolCreate(name="etl", type="lambda").type == "lambda"
    with pytest.raises(ValidationError, match="type"):
        PoolCreate(name="etl", type="kubernetes")


def test_a_pool_stored_before_kinds_reads_as_a_worker_pool():
    assert Pool.model_validate_json('{"name": "old", "queue_url": "q"}').type == "worker"


def test_a_deployment_records_a_positive_finite_timeout():
    base = {"flow_name": "etl", "name": "n", "entrypoint": "flows.py:etl"}
    assert DeploymentCreate(**base, timeout_seconds=600).timeout_seconds == 600
    assert DeploymentCreate(**base).timeout_seconds is None
    for bad in (0, -1, float("inf")):
        with pytest.raises(ValidationError, match="timeout_seconds"):
            DeploymentCreate(**base, timeout_seconds=bad)


def test_the_lambda_limit_leaves_a_margin_under_fifteen_minutes():
    assert 0 < LAMBDA_MAX_RUN_SECONDS < 15 * 60


# ---- stores ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "aws"])
def store_and_queue(request, tmp_path):
    if request.param == "sqlite":
        store, queue = SqliteRunStore(tmp_path / "s.db"), SqliteRunQueue(tmp_path / "q.db")
        yield store, queue
        store.close()
        queue.close()
        return
    import boto3
    import moto

    from contract.aws_adapters import QUEUE_PREFIX, REGION, TABLE_NAME, create_table
    from sluice_functions.adapters.aws import DynamoRunStore, SqsRunQueue

    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client)
        yield (DynamoRunStore(client, TABLE_NAME, retention_days=30),
               SqsRunQueue(boto3.client("sqs", region_name=REGION), QUEUE_PREFIX))


def test_a_store_keeps_the_pool_kind_and_creating_again_keeps_it(store_and_queue):
    store, queue = store_and_queue
    # Given a lambda pool
    create_pool(PoolCreate(name="fast", type="lambda"), store=store, queue=queue, now=NOW)
    # When it is read, and created again without a type (new settings only)
    assert store.get_pool("fast").type == "lambda"
    again = create_pool(PoolCreate(name="fast", concurrency_limit=3), store=store, queue=queue,
                        now=NOW)
    # Then it is still a lambda pool, with the new setting; a new pool is a worker pool
    assert (again.type, again.concurrency_limit) == ("lambda", 3)
    assert [p.type for p in store.list_pools()] == ["lambda"]
    assert create_pool(PoolCreate(name="plain"), store=store, queue=queue, now=NOW).type == "worker"


def test_a_dynamo_pool_item_without_a_type_reads_as_a_worker_pool():
    import boto3
    import moto

    from contract.aws_adapters import QUEUE_PREFIX, REGION, TABLE_NAME, create_table
    from sluice_functions.adapters.aws import DynamoRunStore, SqsRunQueue
    from sluice_functions.adapters.aws import dynamo_items as items

    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client)
        store = DynamoRunStore(client, TABLE_NAME, retention_days=30)
        queue = SqsRunQueue(boto3.client("sqs", region_name=REGION), QUEUE_PREFIX)
        _a_pool_item_without_type_reads_as_worker(store, queue, items)


def _a_pool_item_without_type_reads_as_worker(store, queue, items) -> None:
    # Given a pool item written before pool kinds (its JSON has no type)
    create_pool(PoolCreate(name="old", type="fargate"), store=store, queue=queue, now=NOW)
    key = items.pool_key("old")
    data = json.loads(items.data_of(store._table.get(key, "test read")))
    assert data.pop("type") == "fargate"
    store._table.update(key, "SET #data = :data", {"#data": items.DATA},
                        {":data": items.s(json.dumps(data))}, "test write")
    # When it is read, Then it is a worker pool
    assert store.get_pool("old").type == "worker"


# ---- API ---------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path):
    writes: list[str] = []
    metrics = InMemoryMetrics()
    clock = Clock()
    ports = sqlite_ports(tmp_path, writes, metrics)
    yield Api(app=build_app(ports, clock=clock), ports=ports, metrics=metrics, clock=clock,
              writes=writes)
    close_ports(ports)


def test_changing_the_type_of_a_pool_in_use_is_a_409_naming_the_fix(api):
    # Given a worker pool that a deployment uses
    assert api.post("/pools", {"name": "etl"}).status == 200
    api.post("/deployments", deployment(pool="etl"))
    # When it is created again as the same kind, Then that is fine
    assert api.post("/pools", {"name": "etl", "type": "worker"}).status == 200
    # When it is asked to become a lambda pool
    answer = api.post("/pools", {"name": "etl", "type": "lambda"})
    # Then the answer is 409, says delete and create it again, and the pool is unchanged
    assert answer.status == 409
    assert "delete it and create it again" in answer.json["message"]
    assert answer.json["details"]["type"] == "worker"
    assert api.get("/pools/etl").json["type"] == "worker"


def test_an_unused_pool_gets_the_kind_it_is_created_with(api):
    # Given a pool recorded as a worker pool that nothing uses yet (e.g. adopted from a queue
    # the AWS stack created)
    api.post("/pools", {"name": "fresh"})
    # When it is created as a lambda pool, Then it becomes one
    answer = api.post("/pools", {"name": "fresh", "type": "lambda"})
    assert answer.status == 200 and api.get("/pools/fresh").json["type"] == "lambda"


def deployment(**fields):
    return {"flow_name": "etl", "name": "nightly", "entrypoint": "flows.py:etl", "pool": "fast",
            **fields}


def test_a_deployment_longer_than_lambda_allows_is_a_422_naming_the_fix(api):
    # Given a lambda pool
    api.post("/pools", {"name": "fast", "type": "lambda"})
    # When a deployment that may run 20 minutes is deployed to it
    answer = api.post("/deployments", deployment(timeout_seconds=1200))
    # Then it is refused, naming the pool kinds that can run it and the timeout
    assert answer.status == 422
    assert "use a fargate or worker pool" in answer.json["message"]
    assert "lower the timeout" in answer.json["message"]
    assert api.get("/deployments/etl/nightly").status == 404
    # And one within the limit, or with no timeout, is accepted
    assert api.post("/deployments", deployment(timeout_seconds=LAMBDA_MAX_RUN_SECONDS)
                    ).status == 200
    assert api.post("/deployments", deployment(name="open")).status == 200


def test_raising_a_lambda_deployments_timeout_past_the_limit_is_a_422(api):
    api.post("/pools", {"name": "fast", "type": "lambda"})
    api.post("/deployments", deployment(timeout_seconds=60))
    answer = api.patch("/deployments/etl/nightly", {"timeout_seconds": 3600})
    assert answer.status == 422 and "fargate or worker pool" in answer.json["message"]
    assert api.get("/deployments/etl/nightly").json["timeout_seconds"] == 60


def test_a_long_deployment_is_fine_on_worker_and_fargate_pools(api):
    api.post("/pools", {"name": "fast", "type": "fargate"})
    assert api.post("/deployments", deployment(timeout_seconds=86_400)).status == 200
    assert api.post("/deployments", deployment(pool="hosts", timeout_seconds=86_400)
                    ).status == 200


def claim(api, pool: str, worker: str = "dispatcher"):
    api.post("/pools", {"name": pool, "type": "fargate" if pool == "tasks" else "worker"})
    api.post("/deployments", deployment(pool=pool, name=pool))
    run = api.post(f"/deployments/etl/{pool}/runs").json
    answer = api.post(f"/flow-runs/{run['id']}/claim", {"worker": worker})
    assert answer.status == 200, answer.json
    return run["id"], answer.json


def test_a_fargate_claim_gets_the_startup_grace_and_a_heartbeat_ends_it(api):
    # Given a run of a fargate pool and one of a worker pool, both claimed
    fargate_run, fargate_claim = claim(api, "tasks")
    _, worker_claim = claim(api, "hosts")
    # Then the fargate claim's lease covers the task's start-up; the worker's is the normal one
    assert fargate_claim["lease_seconds"] == FARGATE_STARTUP_GRACE_SECONDS
    assert worker_claim["lease_seconds"] < FARGATE_STARTUP_GRACE_SECONDS
    stored = api.get(f"/flow-runs/{fargate_run}").json
    assert stored["lease_expires_at"].startswith(
        (NOW + timedelta(seconds=FARGATE_STARTUP_GRACE_SECONDS)).isoformat()[:19])
    # When the task heartbeats, Then the lease is back on the normal terms
    beat = api.post(f"/flow-runs/{fargate_run}/heartbeat", {"lease": fargate_claim["lease"]})
    assert beat.json["lease_seconds"] == worker_claim["lease_seconds"]


def test_the_monitor_leaves_a_fargate_run_alone_during_its_grace(api):
    # Given a fargate run claimed and silent for longer than a normal lease (plus margin)
    from sluice_functions.monitoring.monitor import monitor_runs

    run_id, terms = claim(api, "tasks")
    _, normal = claim(api, "hosts")
    ports = api.ports

    def tick() -> None:
        monitor_runs(store=ports.store, queue=ports.queue, metrics=ports.metrics,
                     heartbeat_timeout=normal["lease_seconds"], now=api.clock.now)

    # (silent longer than a worker pool's lease and its margin, within the grace)
    assert 2 * normal["lease_seconds"] < 0.8 * FARGATE_STARTUP_GRACE_SECONDS
    api.clock.advance(0.8 * FARGATE_STARTUP_GRACE_SECONDS)
    tick()
    # Then it is still Pending (its task is starting); after the grace it is crashed
    assert api.get(f"/flow-runs/{run_id}").json["state"]["type"] == "PENDING"
    api.clock.advance(FARGATE_STARTUP_GRACE_SECONDS)
    tick()
    assert api.get(f"/flow-runs/{run_id}").json["state"]["type"] in ("CRASHED", "SCHEDULED")


# ---- CLI ---------------------------------------------------------------------------------------

FLOWS = '''
from sluice import flow


@flow(timeout_seconds=600)
def ten_minutes() -> None:
    pass


@flow(timeout_seconds=3600)
def an_hour() -> None:
    pass
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.cli.served import served_project

    with served_project(tmp_path_factory.mktemp("kinds"), FLOWS) as (sluice, project):
        yield sluice, project


def test_cli_creates_a_lambda_pool_and_shows_its_kind(served):
    sluice, _ = served
    # When a pool is created with --type lambda
    created = sluice.cli("pool", "create", "quick", "--type", "lambda")
    # Then the CLI says so, and ls and inspect show the kind
    assert "pool quick created (type lambda, queue " in created.stdout
    listed = sluice.cli("pool", "ls", env={"COLUMNS": "120"}).stdout
    assert any([cell.strip() for cell in line.split("│")[1:3]] == ["quick", "lambda"]
               for line in listed.splitlines())
    assert "type: lambda" in sluice.cli("pool", "inspect", "quick").stdout
    # And creating it again without --type keeps it a lambda pool
    sluice.cli("pool", "create", "quick", "--concurrency", "2")
    assert sluice.cli_json("pool", "inspect", "quick")["type"] == "lambda"


def test_cli_refuses_another_type_for_an_existing_pool_with_the_fix(served):
    sluice, _ = served
    sluice.cli("pool", "create", "steady")
    # (a deployment uses it)
    sluice.cli("deploy", "flows.py:ten_minutes", "--name", "steady", "--pool", "steady",
               "--project-dir", str(served[1]))
    refused = sluice.cli("pool", "create", "steady", "--type", "fargate", check=False)
    assert refused.returncode != 0
    assert "delete it and create it again" in refused.stderr
    unknown = sluice.cli("pool", "create", "other", "--type", "k8s", check=False)
    assert unknown.returncode != 0 and "worker, lambda, fargate" in unknown.stderr


def test_cli_deploy_records_the_flow_timeout_and_lambda_refuses_a_long_one(served):
    sluice, project = served
    sluice.cli("pool", "create", "short", "--type", "lambda")

    def deploy(flow: str, *extra: str, check: bool = True):
        return sluice.cli("deploy", f"flows.py:{flow}", "--name", "d", "--pool", "short",
                          "--project-dir", str(project), *extra, check=check)

    # When a flow with a 10-minute timeout is deployed to a lambda pool, Then it is recorded
    deploy("ten_minutes")
    assert sluice.cli_json("deployment", "inspect", "ten-minutes/d")["deployment"][
        "timeout_seconds"] == 600
    # When a flow with an hour's timeout is, Then it is refused with the fix
    refused = deploy("an_hour", check=False)
    assert refused.returncode != 0 and "use a fargate or worker pool" in refused.stderr
    # And --timeout overrides the flow's own
    deploy("an_hour", "--timeout", "300")
    assert sluice.cli_json("deployment", "inspect", "an-hour/d")["deployment"][
        "timeout_seconds"] == 300

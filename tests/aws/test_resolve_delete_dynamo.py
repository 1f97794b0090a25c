"""The AWS adapters' look-ups and deletions under moto: `DynamoRunStore.find_flow_runs`,
`delete_flow_run` and `delete_pool`, `SqsRunQueue.delete_pool_queue` and
`CloudWatchLogSink.delete` - and the use cases on top of them (resolve, delete a run)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import moto
import pytest

from sluice.exceptions import Conflict, NotFound
from sluice.models import FlowRun, LogRecord, Pool, State, StateType, TaskRun, Worker
from sluice_functions.adapters.aws import CloudWatchLogSink, DynamoRunStore, SqsRunQueue
from sluice_functions.config import TABLE_PARTITION_KEY, table_key_schema
from sluice_functions.ports import PoolQueue
from sluice_functions.service.run_admin import delete_flow_run, resolve_flow_run

REGION = "us-east-1"
TABLE = "sluice-resolve-delete"
LOG_GROUP = "/sluice-test/flow-runs"
BASE = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[None]:
    with moto.mock_aws():
        yield


@pytest.fixture
def dynamodb(aws) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName=TABLE, **table_key_schema())
    return client


@pytest.fixture
def store(dynamodb) -> DynamoRunStore:
    return DynamoRunStore(dynamodb, TABLE)


@pytest.fixture
def logs(aws) -> CloudWatchLogSink:
    client = boto3.client("logs", region_name=REGION)
    client.create_log_group(logGroupName=LOG_GROUP)
    return CloudWatchLogSink(client, LOG_GROUP)


def run(run_id: str | None = None, *, minutes: int = 0, name: str = "brave-otter",
        state_type: StateType = StateType.SCHEDULED, **fields: Any) -> FlowRun:
    when = BASE + timedelta(minutes=minutes)
    return FlowRun(id=run_id or uuid.uuid4().hex, flow_name="etl", name=name, pool="default",
                   state=State(type=state_type, scheduled_time=when), scheduled_at=when,
                   **fields)


def finished(store: DynamoRunStore, flow_run: FlowRun) -> FlowRun:
    created = store.create_flow_run(flow_run)
    return store.set_flow_run_state(
        created.model_copy(update={"state": State(type=StateType.COMPLETED)}), "t-complete")


def partition_items(dynamodb: Any, flow_run_id: str) -> list[dict]:
    return dynamodb.query(
        TableName=TABLE, KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
        ExpressionAttributeValues={":pk": {"S": f"RUN#{flow_run_id}"}})["Items"]


# ---- find_flow_runs ----------------------------------------------------------------------------

def test_runs_are_found_by_id_prefix_suffix_and_name_newest_first(store):
    # Given runs with a shared prefix, one with a known suffix and two named alike
    shared = [store.create_flow_run(run(f"abcd{n:028d}", minutes=n, name=f"r{n}"))
              for n in range(3)]
    suffixed = store.create_flow_run(run("0" * 24 + "feedbeef", name="other"))
    twins = [store.create_flow_run(run(minutes=10 + n, name="quiet-heron")) for n in range(2)]
    # When each reference is looked up, Then it finds its runs, newest first
    assert [r.id for r in store.find_flow_runs("abcd", limit=6)] == [r.id for r in shared[::-1]]
    assert [r.id for r in store.find_flow_runs("ABCD", limit=2)] == [shared[2].id, shared[1].id]
    assert [r.id for r in store.find_flow_runs("feedbeef", limit=6)] == [suffixed.id]
    assert [r.id for r in store.find_flow_runs("quiet-heron", limit=6)] == [
        twins[1].id, twins[0].id]


def test_a_name_matches_the_runs_name_only(store):
    # Given a run whose flow name and parameters hold the word, but not its name
    store.create_flow_run(run(name="other", parameters={"name": "etl-x"},
                              tags=["etl-x"]).model_copy(update={"flow_name": "etl-x"}))
    # When the word is looked up as a name, Then nothing matches
    assert store.find_flow_runs("etl-x", limit=6) == []
    # And short fragments of ids match nothing
    store.create_flow_run(run("f" * 32))
    assert store.find_flow_runs("fff", limit=6) == []


def test_resolve_on_dynamodb_finds_the_full_id_and_refuses_ambiguity(store):
    first = store.create_flow_run(run("beef" + "1" * 28, minutes=1))
    store.create_flow_run(run("beef" + "2" * 28, minutes=2))
    assert resolve_flow_run(first.id, store=store).id == first.id
    assert resolve_flow_run("1" * 8, store=store).id == first.id
    with pytest.raises(Conflict, match="matches 2 flow runs.*give more characters or the full id"):
        resolve_flow_run("beef", store=store)


# ---- delete_flow_run ---------------------------------------------------------------------------

def test_deleting_a_run_removes_its_partition_and_idempotency_key(store, dynamodb, logs):
    # Given a finished run with an idempotency key, history, a transition id, task runs and logs
    done = finished(store, run(idempotency_key="nightly-2026-12-01"))
    store.upsert_task_runs([TaskRun(id=uuid.uuid4().hex, flow_run_id=done.id, task_name="t",
                                    name=f"t-{n}", state=State(type=StateType.COMPLETED),
                                    version=1) for n in range(3)])
    store.add_finished_task_runs([TaskRun(id=uuid.uuid4().hex, flow_run_id=done.id,
                                          task_name="t", name=f"short-{n}", version=3,
                                          state=State(type=StateType.COMPLETED))
                                  for n in range(4)])
    logs.append(done.id, [LogRecord(id="l1", flow_run_id=done.id, timestamp=BASE,
                                    message="hello")])
    assert len(partition_items(dynamodb, done.id)) == 1 + 3 + 1  # run, task runs, one sheet
    # When the run is deleted through the use case
    delete_flow_run(done.id, store=store, logs=logs)
    # Then nothing of it is left: run, history, transition id, task runs, key, logs
    assert partition_items(dynamodb, done.id) == []
    assert store.get_flow_run_by_idempotency_key("nightly-2026-12-01") is None
    assert logs.read(done.id).items == []
    # And a second delete is NotFound
    with pytest.raises(NotFound):
        delete_flow_run(done.id, store=store, logs=logs)


def test_a_run_with_more_records_than_one_transaction_is_deleted_whole(store, dynamodb):
    done = finished(store, run())
    store.upsert_task_runs([TaskRun(id=f"t{n:04d}", flow_run_id=done.id, task_name="t",
                                    name=f"t-{n}", state=State(type=StateType.COMPLETED),
                                    version=1) for n in range(150)])
    store.delete_flow_run(done)
    assert partition_items(dynamodb, done.id) == []


def test_a_stale_version_deletes_nothing(store, dynamodb):
    done = finished(store, run())
    stale = done.model_copy(update={"version": done.version - 1})
    with pytest.raises(Conflict):
        store.delete_flow_run(stale)
    assert store.get_flow_run(done.id).id == done.id
    assert len(partition_items(dynamodb, done.id)) == 1  # history and transition id: inline


def test_an_unfinished_run_is_refused_by_the_use_case(store, logs):
    waiting = store.create_flow_run(run())
    with pytest.raises(Conflict, match="cancel it first"):
        delete_flow_run(waiting.id, store=store, logs=logs)
    assert store.get_flow_run(waiting.id).state.type is StateType.SCHEDULED


# ---- pools, queues, log streams ----------------------------------------------------------------

def test_deleting_a_pool_removes_its_record_and_workers(store):
    store.upsert_pool(Pool(name="etl", paused=True))
    assert store.get_pool("etl").paused is True
    store.upsert_worker(Worker(name="w1", pool="etl", last_seen=BASE))
    store.delete_pool("etl")
    with pytest.raises(NotFound):
        store.get_pool("etl")
    assert store.list_workers("etl") == []
    with pytest.raises(NotFound):
        store.delete_pool("etl")


def test_deleting_a_pool_queue_removes_the_queue_and_its_dead_letter_queue(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    queue = SqsRunQueue(sqs, "sluice-test")
    queue.create_pool_queue("etl")
    queue.create_pool_queue("ml")
    queue.send("etl", "{}")
    queue.delete_pool_queue("etl")
    left = [url.rsplit("/", 1)[1] for url in sqs.list_queues().get("QueueUrls", [])]
    assert sorted(left) == ["sluice-test-ml", "sluice-test-ml-dlq"]
    with pytest.raises(NotFound):
        queue.depth("etl")
    queue.delete_pool_queue("etl")  # idempotent


def test_the_stacks_own_pool_queues_are_not_deleted(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="stack-default")["QueueUrl"]
    queue = SqsRunQueue(sqs, "sluice-test",
                        known_queues={"default": PoolQueue("default", url, url + "-dlq")})
    with pytest.raises(Conflict, match="belong to the stack"):
        queue.delete_pool_queue("default")
    assert url in sqs.list_queues()["QueueUrls"]


def test_deleting_a_runs_logs_deletes_its_stream_and_is_idempotent(logs):
    logs.append("run-1", [LogRecord(id="l1", flow_run_id="run-1", timestamp=BASE, message="a")])
    logs.append("run-2", [LogRecord(id="l1", flow_run_id="run-2", timestamp=BASE, message="b")])
    logs.delete("run-1")
    logs.delete("run-1")
    assert logs.read("run-1").items == []
    assert [r.message for r in logs.read("run-2").items] == ["b"]

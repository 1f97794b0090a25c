"""Issue 17 on AWS (moto): Sluice events are put on EventBridge in batches of ten, a user's
ordinary rule routes `sluice.flow-run.Failed` to an SQS queue, and the DynamoDB event store
keeps and lists them (by time, name prefix and resource) with a TTL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import moto
import pytest

from sluice.models import EventResource, SluiceEvent
from sluice_functions.adapters.aws.event_bridge import MAX_ENTRIES_PER_PUT, EventBridgePublisher
from sluice_functions.adapters.aws.event_store import DynamoEventStore
from sluice_functions.config import TTL_ATTRIBUTE, table_key_schema

REGION = "us-east-1"
TABLE = "sluice-events"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(name: str, run_id: str = "run-1", *, at: datetime = NOW, **payload: Any) -> SluiceEvent:
    return SluiceEvent(name=name, occurred=at,
                       resource=EventResource(kind="flow-run", id=run_id, name="brave-otter"),
                       related=[EventResource(kind="pool", id="etl")], payload=payload)


@pytest.fixture
def aws() -> Iterator[None]:
    with moto.mock_aws():
        yield


class CountingEvents:
    """The events client, counting PutEvents calls and their entries."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.puts: list[int] = []

    def put_events(self, **request: Any) -> Any:
        self.puts.append(len(request["Entries"]))
        return self.client.put_events(**request)


def test_events_are_put_in_batches_of_ten(aws):
    client = CountingEvents(boto3.client("events", region_name=REGION))
    publisher = EventBridgePublisher(client, stack_prefix="sluice")
    publisher.publish([event("sluice.flow-run.Running", f"run-{i}") for i in range(23)])
    assert client.puts == [MAX_ENTRIES_PER_PUT, MAX_ENTRIES_PER_PUT, 3]


def test_a_rule_on_the_bus_routes_failed_runs_to_a_queue(aws):
    # Given a user's rule on the default bus: Sluice's failed runs go to an SQS queue
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="failed-runs")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="sluice-failed", EventPattern=json.dumps(
        {"source": ["sluice.sluice"], "detail-type": ["sluice.flow-run.Failed"]}))
    events.put_targets(Rule="sluice-failed", Targets=[{"Id": "queue", "Arn": queue_arn}])
    # When Sluice publishes a Running and a Failed event
    publisher = EventBridgePublisher(events, stack_prefix="sluice")
    publisher.publish([event("sluice.flow-run.Running"),
                       event("sluice.flow-run.Failed", message="boom")])
    # Then the queue received the Failed one only, the Sluice event as its detail
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in received]
    assert [b["detail-type"] for b in bodies] == ["sluice.flow-run.Failed"]
    assert bodies[0]["source"] == "sluice.sluice"
    detail = bodies[0]["detail"]
    assert (detail["name"], detail["resource"]["id"], detail["payload"]) == (
        "sluice.flow-run.Failed", "run-1", {"message": "boom"})


def test_a_named_bus_gets_the_events(aws):
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="ops")
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="all-sluice")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="ops",
                    EventPattern=json.dumps({"source": ["sluice.prod"]}))
    events.put_targets(Rule="all", EventBusName="ops", Targets=[{"Id": "q", "Arn": queue_arn}])
    EventBridgePublisher(events, stack_prefix="prod", bus_name="ops").publish(
        [event("sluice.worker.offline")])
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["detail-type"] for m in received] == ["sluice.worker.offline"]


@pytest.fixture
def event_store(aws) -> DynamoEventStore:
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName=TABLE, **table_key_schema())
    return DynamoEventStore(client, TABLE, retention_days=14)


def test_the_dynamo_store_lists_by_time_name_and_resource_across_days(event_store):
    # Given events over two days, one appended twice
    first = event("sluice.flow-run.Running", at=NOW - timedelta(days=1))
    second = event("sluice.flow-run.Failed", at=NOW)
    other = event("etl.file-loaded", "run-2", at=NOW + timedelta(minutes=1))
    event_store.append([first, second, other])
    event_store.append([second])
    since = NOW - timedelta(days=2)
    # Then: oldest first from `since`, newest first without, filtered by name and resource
    listed = event_store.list_events(since=since, until=NOW + timedelta(hours=1), limit=10)
    assert [e.id for e in listed.items] == [first.id, second.id, other.id]
    by_name = event_store.list_events(since=since, until=NOW + timedelta(hours=1),
                                      names=["sluice.flow-run."], limit=10)
    assert [e.id for e in by_name.items] == [first.id, second.id]
    by_resource = event_store.list_events(since=since, until=NOW + timedelta(hours=1),
                                          resource_id="run-2", limit=10)
    assert [e.id for e in by_resource.items] == [other.id]


def test_the_dynamo_store_pages_with_a_cursor(event_store):
    batch = [event("sluice.flow-run.Running", f"run-{i}", at=NOW + timedelta(seconds=i))
             for i in range(5)]
    event_store.append(batch)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = event_store.list_events(since=NOW - timedelta(hours=1),
                                       until=NOW + timedelta(hours=1), limit=2, cursor=cursor)
        seen += [e.id for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [e.id for e in batch]


def test_stored_events_expire_by_ttl_after_the_retention(event_store):
    event_store.append([event("sluice.flow-run.Running")])
    (item,) = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
    assert int(item[TTL_ATTRIBUTE]["N"]) == int((NOW + timedelta(days=14)).timestamp())

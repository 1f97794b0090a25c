"""Automations on AWS (moto): automations and receipts in the DynamoDB table, notifications
published to SNS (read back through an SQS subscription)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import moto
import pytest

from sluice.exceptions import NotFound
from sluice.models import AutomationCreate, EventResource, SluiceEvent
from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.adapters.aws.dynamo_automations import DynamoAutomationStore
from sluice_functions.adapters.aws.event_store import DynamoEventStore
from sluice_functions.adapters.memory_metrics import InMemoryMetrics
from sluice_functions.automations import ActionRuntime, automation_store, on_events
from sluice_functions.automations.manage import create_automation
from sluice_functions.config import table_key_schema
from sluice_functions.ports import ControlPlanePorts

REGION = "eu-central-1"
TABLE = "sluice-automations"
T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with moto.mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=TABLE, **table_key_schema())
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]
                                             )["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield {"dynamodb": dynamodb, "sqs": sqs, "queue_url": queue_url, "topic": topic}


@pytest.fixture
def ports(aws) -> ControlPlanePorts:
    return ControlPlanePorts(store=DynamoRunStore(aws["dynamodb"], TABLE), queue=None,  # type: ignore[arg-type]
                             logs=None, metrics=InMemoryMetrics(),  # type: ignore[arg-type]
                             events=DynamoEventStore(aws["dynamodb"], TABLE, retention_days=14),
                             automations=DynamoAutomationStore(aws["dynamodb"], TABLE))


def published(aws) -> list[dict[str, Any]]:
    answer = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def failed(run: str) -> SluiceEvent:
    return SluiceEvent(name="sluice.flow-run.Failed", occurred=T0,
                       resource=EventResource(kind="flow-run", id=run, name="nightly-run"),
                       payload={"message": "disk full"})


def test_a_failure_is_published_to_sns_once(aws, ports):
    # Given an automation publishing failures to the topic (stored in the DynamoDB table)
    create_automation(AutomationCreate.model_validate({
        "name": "email on failure", "trigger": {"type": "reactive",
                                                "match": {"names": ["sluice.flow-run.Failed"]}},
        "actions": [{"type": "notify", "via": "sns", "topic_arn": aws["topic"],
                     "subject": "Sluice: {{ event.name }} ✓ é",
                     "body": "run {{ event.resource.id }}: {{ event.payload.message }}"}]}),
        ports=ports, now=T0 - timedelta(days=1))
    assert isinstance(automation_store(ports), DynamoAutomationStore)
    event = failed("run-7")
    ports.events.append([event])
    runtime = ActionRuntime(secret=lambda name: None, post=lambda *a: 500,
                            sns_client=lambda region: boto3.client("sns", region_name=region))
    # When the event is handed to the automations twice (a retried delivery)
    fired = [on_events([event], ports=ports, now=T0, runtime=runtime) for _ in range(2)]
    # Then one message reached the topic, with the rendered text and an ASCII subject
    assert fired == [1, 0]
    message, = published(aws)
    assert message["Message"] == "run run-7: disk full"
    assert message["Subject"] == "Sluice: sluice.flow-run.Failed  "


def test_an_unknown_topic_fails_the_action_with_the_fix(aws, ports):
    create_automation(AutomationCreate.model_validate({
        "name": "bad topic", "trigger": {"type": "reactive"},
        "actions": [{"type": "notify", "via": "sns",
                     "topic_arn": f"arn:aws:sns:{REGION}:123456789012:nowhere"}]}),
        ports=ports, now=T0)
    runtime = ActionRuntime(secret=lambda name: None, post=lambda *a: 500,
                            sns_client=lambda region: boto3.client("sns", region_name=region))
    assert on_events([failed("run-8")], ports=ports, now=T0, runtime=runtime) == 1
    assert ports.metrics.counter("AutomationActionsFailed") == 1
    assert published(aws) == []


def test_the_dynamodb_store_keeps_automations_and_claims_receipts_once(aws):
    store = DynamoAutomationStore(aws["dynamodb"], TABLE)
    from sluice.models import Automation

    automation = Automation(name="a", trigger={"type": "reactive"},
                            actions=[{"type": "cancel-run"}], created=T0, updated=T0)
    store.put_automation(automation)
    assert [a.id for a in store.list_automations()] == [automation.id]
    assert store.get_automation(automation.id).name == "a"
    assert store.claim_receipt(automation.id, "count:*:1", at=T0) is True
    assert store.claim_receipt(automation.id, "count:*:1", at=T0) is False
    store.claim_receipt(automation.id, "count:*:2", at=T0 + timedelta(seconds=5))
    assert store.latest_receipt(automation.id, "count:*:") == T0 + timedelta(seconds=5)
    assert store.latest_receipt(automation.id, "event:") is None
    store.delete_automation(automation.id)
    with pytest.raises(NotFound, match="sluice automation ls"):
        store.get_automation(automation.id)
    with pytest.raises(NotFound):
        store.delete_automation(automation.id)

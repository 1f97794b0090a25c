"""The automations Lambda on the AWS adapters (moto): the API's transitions put events on the bus
and run no automation; the automations function, handed those events as EventBridge delivers
them, acts once per event and puts its own result on the bus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import moto
import pytest
from aws_lambda_powertools import Logger

from sluice.models import AutomationCreate, EventResource, SluiceEvent
from sluice_functions import service
from sluice_functions.adapters.aws.clients import AwsClients, build_aws_ports
from sluice_functions.adapters.aws.dynamo_automations import DynamoAutomationStore
from sluice_functions.automations.dispatch import NoDispatch
from sluice_functions.automations.manage import create_automation
from sluice_functions.config import ControlPlaneSettings, table_key_schema
from sluice_functions.handlers.automations import make_handler
from sluice_functions.service.event_log import attach_recorder, record

REGION = "us-east-1"
TABLE = "sluice-automations-fn"
NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)


class Context:
    function_name = "sluice-automations"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:sluice-automations"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def aws(monkeypatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with moto.mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=TABLE, **table_key_schema())
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        # A queue standing in for "everything on the default bus from this stack".
        seen = sqs.create_queue(QueueName="seen-on-bus")["QueueUrl"]
        seen_arn = sqs.get_queue_attributes(QueueUrl=seen, AttributeNames=["QueueArn"]
                                            )["Attributes"]["QueueArn"]
        events.put_rule(Name="stack-events", EventPattern=json.dumps({"source": ["sluice.t"]}))
        events.put_targets(Rule="stack-events", Targets=[{"Id": "seen", "Arn": seen_arn}])
        clients = AwsClients(dynamodb=dynamodb, sqs=sqs,
                             logs=boto3.client("logs", region_name=REGION), events=events)
        ports = build_aws_ports(ControlPlaneSettings(table_name=TABLE, stack_prefix="t"),
                                clients)
        yield {"ports": ports, "sqs": sqs, "seen": seen}


def on_bus(aws) -> list[dict[str, Any]]:
    """Every event the bus delivered to the stack's rule so far (as EventBridge delivers)."""
    found = []
    while True:
        answer = aws["sqs"].receive_message(QueueUrl=aws["seen"], MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["seen"],
                                      ReceiptHandle=message["ReceiptHandle"])


def test_events_reach_the_function_through_the_bus_and_act_once(aws):
    ports = aws["ports"]
    assert isinstance(ports.automations, DynamoAutomationStore)
    # Given the API's recorder (nothing acts in the request) and an automation pausing the pool
    attach_recorder(ports, NoDispatch())
    service.ensure_pool("default", store=ports.store, queue=ports.queue)
    create_automation(AutomationCreate.model_validate({
        "name": "pause on ping", "trigger": {"type": "reactive",
                                             "match": {"names": ["test.ping"]}},
        "actions": [{"type": "pause-pool", "pool": "default"}]}),
        ports=ports, now=NOW - timedelta(days=1))
    event = SluiceEvent(name="test.ping", occurred=NOW,
                        resource=EventResource(kind="test", id="p1"))

    on_bus(aws)  # (the pool's creation)

    # When the API records the event
    record([event], ports=ports, now=NOW)

    # Then it is on the bus and the pool is not paused yet
    (delivered,) = on_bus(aws)
    assert delivered["detail-type"] == "test.ping" and delivered["source"] == "sluice.t"
    pool = service.get_pool("default", store=ports.store, queue=ports.queue)
    assert not pool.paused

    # When EventBridge hands it to the automations function twice
    handler = make_handler(lambda: ports, logger=Logger(service=f"t-{uuid.uuid4().hex}"))
    answers = [handler(delivered, Context()) for _ in range(2)]

    # Then the automation acted once, and its result went on the bus, with its depth
    assert [a["fired"] for a in answers] == [1, 0]
    assert service.get_pool("default", store=ports.store, queue=ports.queue).paused
    results = [e for e in on_bus(aws) if e["detail-type"] == "sluice.automation.triggered"]
    assert [e["detail"]["payload"]["depth"] for e in results] == [1]
    assert results[0]["detail"]["payload"]["actions"][0]["ok"] is True

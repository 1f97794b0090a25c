"""Deployments that run on events, on AWS (moto): deploying one puts an EventBridge rule with
its pattern targeting the API function, deleting it deletes the rule, and an event EventBridge
delivers to the API handler starts the run of the deployment it matches (once per event)."""

from __future__ import annotations

import dataclasses

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import moto
import pytest
from aws_lambda_powertools import Logger

from sluice.models import DeploymentCreate, DeploymentUpdate
from sluice.models.deployments import OnEvent
from sluice_functions import service
from sluice_functions.adapters.aws.clients import AwsClients, build_aws_ports
from sluice_functions.adapters.aws.event_rules import EventBridgeRules, rule_name
from sluice_functions.automations.dispatch import NoDispatch
from sluice_functions.config import ControlPlaneSettings, table_key_schema
from sluice_functions.handlers.api import make_handler
from sluice_functions.ports import FlowRunFilter
from sluice_functions.service import event_log

REGION = "us-east-1"
TABLE = "sluice-on-event"
API_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:sluice-api"
NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
PATTERN = {"source": ["aws.s3"], "detail-type": ["Object Created"],
           "detail": {"object": {"key": [{"prefix": "incoming/"}]}}}


def s3_event(key: str, event_id: str = "8b1c5f0e-0000-4000-8000-000000000001") -> dict[str, Any]:
    """What EventBridge hands a Lambda target for an S3 upload."""
    return {"version": "0", "id": event_id, "detail-type": "Object Created",
            "source": "aws.s3", "account": "123456789012", "time": "2026-12-04T10:00:00Z",
            "region": REGION, "resources": ["arn:aws:s3:::landing"],
            "detail": {"bucket": {"name": "landing"}, "object": {"key": key, "size": 5}}}


class Context:
    """The attributes Powertools and the handler read from a Lambda context."""

    function_name = "sluice-api"
    function_version = "$LATEST"
    invoked_function_arn = API_ARN
    memory_limit_in_mb = 512
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


@pytest.fixture
def ports(monkeypatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("SLUICE_TABLE_NAME", TABLE)
    with moto.mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=TABLE, **table_key_schema())
        clients = AwsClients(dynamodb=dynamodb, sqs=boto3.client("sqs", region_name=REGION),
                             logs=boto3.client("logs", region_name=REGION),
                             events=boto3.client("events", region_name=REGION))
        ports = build_aws_ports(ControlPlaneSettings(table_name=TABLE, stack_prefix="sluice"),
                                clients)
        yield ports


@pytest.fixture
def rules(ports) -> EventBridgeRules:
    rules = EventBridgeRules(boto3.client("events", region_name=REGION), queue_prefix="sluice",
                             bus_name="default", target_arn=API_ARN)
    # The ports the API function builds in AWS carry the rules; the use cases find them
    # through their store.
    ports_with_rules = dataclasses.replace(ports, event_rules=rules)
    event_log.attach_recorder(ports_with_rules, NoDispatch())
    assert event_log.ports_of(ports.store) is ports_with_rules
    return rules


def deploy(ports, pattern=PATTERN, **fields):
    request = DeploymentCreate(flow_name="etl", name="on-upload", entrypoint="flows.py:etl",
                               on_event=OnEvent(pattern=pattern, parameters={
                                   "key": "{{ event.detail.object.key }}"}), **fields)
    return service.create_deployment(request, store=ports.store, queue=ports.queue, now=NOW)


def test_deploying_puts_a_rule_with_the_pattern_targeting_the_api_function(ports, rules):
    events = boto3.client("events", region_name=REGION)
    # When a deployment with an event pattern is created
    deployment = deploy(ports)

    # Then its rule holds the pattern, is enabled and targets the API function as it is
    name = rule_name("sluice", deployment.id)
    assert name.startswith("sluice-on-event-") and len(name) <= 64
    rule = events.describe_rule(Name=name)
    assert json.loads(rule["EventPattern"]) == PATTERN and rule["State"] == "ENABLED"
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert target["Arn"] == API_ARN and "InputTransformer" not in target

    # When it is deployed again with another pattern, and then paused
    deploy(ports, pattern={"source": ["aws.s3"]})
    service.update_deployment(deployment.id, DeploymentUpdate(paused=True), store=ports.store)

    # Then the one rule follows: new pattern, disabled
    rule = events.describe_rule(Name=name)
    assert json.loads(rule["EventPattern"]) == {"source": ["aws.s3"]}
    assert rule["State"] == "DISABLED"
    assert [r["Name"] for r in events.list_rules(NamePrefix="sluice-on-event-")["Rules"]] \
        == [name]


def test_deleting_the_deployment_deletes_its_rule(ports, rules):
    events = boto3.client("events", region_name=REGION)
    deployment = deploy(ports)

    service.delete_deployment(deployment.id, store=ports.store)

    assert events.list_rules(NamePrefix="sluice-on-event-")["Rules"] == []
    assert rules.delete(deployment.id) is False  # deleting again finds nothing, quietly


def test_a_delivered_event_starts_one_run_of_the_matching_deployment(ports):
    # Given the API handler (it manages rules for its own function) and an on-event deployment
    handler = make_handler(lambda: ports, logger=Logger(service=f"t-{uuid.uuid4().hex}"))
    handler({"version": "0", "id": "warm-up", "detail-type": "Ping", "source": "test",
             "detail": {}}, Context())
    built = event_log.ports_of(ports.store)
    assert built.event_rules is not None and built.event_rules.target_arn == API_ARN
    deployment = deploy(ports)

    # When EventBridge delivers a matching upload twice (at least once) and a non-matching one
    answers = [handler(s3_event("incoming/a.csv"), Context()),
               handler(s3_event("incoming/a.csv"), Context()),
               handler(s3_event("archive/b.csv", event_id="other"), Context())]

    # Then one run exists with the templated parameter; the second delivery answered the same
    runs = ports.store.list_flow_runs(FlowRunFilter(deployment_id=deployment.id),
                                      limit=10).items
    assert [r.parameters for r in runs] == [{"key": "incoming/a.csv"}]
    assert answers[0] == answers[1] == {"started": [runs[0].id]}
    assert answers[2] == {"started": []}


def test_an_http_request_still_goes_to_the_routes(ports):
    handler = make_handler(lambda: ports, logger=Logger(service=f"t-{uuid.uuid4().hex}"))
    answer = handler({"version": "2.0", "routeKey": "$default", "rawPath": "/health",
                      "rawQueryString": "", "headers": {}, "isBase64Encoded": False,
                      "requestContext": {"http": {"method": "GET", "path": "/health",
                                                  "sourceIp": "127.0.0.1"},
                                         "requestId": "r", "stage": "$default"}}, Context())
    assert "statusCode" in answer and "started" not in answer

"""The automations function: an EventBridge rule on the stack's bus feeds it every Sluice event
of the stack, with a dead-letter queue, and its role allows what the engine's actions call.
One synth for this module: a stack on its own bus, with a notification secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice_functions.adapters.aws.event_bridge import EventBridgePublisher
from sluice_infra.automation_function import HANDLER

from .template_reading import actions_of, as_list, flat, policy_of_role, refers_to

STACK = "SluiceAutomationsTest"
PREFIX = "autos"
BUS = "team-bus"
SECRET = "sluice/hook-url"


@pytest.fixture(scope="module")
def synthesized() -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(template, cdk-nag findings) of one stack."""
    from aws_cdk import App
    from cdk_nag import AwsSolutionsChecks

    from sluice_infra.app import build_stack

    app = App(context={"sluice:stackName": STACK, "sluice:prefix": PREFIX,
                       "sluice:eventBusName": BUS, "sluice:notificationSecrets": SECRET})
    build_stack(app)
    template = app.synth().get_stack_by_name(STACK).template
    report = AwsSolutionsChecks().validate_scope(app)
    findings = [(violation.rule_name, resource.construct_path)
                for violation in report.violations
                for resource in violation.violating_resources]
    return template, findings


def of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {i: r for i, r in template["Resources"].items() if r["Type"] == type_}


def automations_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [(i, r) for i, r in of_type(template, "AWS::Lambda::Function").items()
                if r["Properties"]["Handler"] == HANDLER]
    return found


def test_a_rule_on_the_stack_bus_sends_the_stack_events_to_the_function(synthesized):
    template, _ = synthesized
    function_id, _ = automations_function(template)
    # Given the rules of the stack, When the one targeting the automations function is read
    (rule,) = [r["Properties"] for r in of_type(template, "AWS::Events::Rule").values()
               if any(refers_to(t["Arn"], function_id) for t in r["Properties"]["Targets"])]
    # Then it listens on the configured bus, to exactly the source the publisher puts events with
    assert rule["EventBusName"] == BUS
    publisher = EventBridgePublisher(None, stack_prefix=PREFIX, bus_name=BUS)
    assert rule["EventPattern"] == {"source": [publisher.source]}
    # and undeliverable events go to a dead-letter queue, after retries
    (target,) = rule["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    # and EventBridge may invoke the function from this rule only
    (permission,) = [p["Properties"] for p in of_type(template, "AWS::Lambda::Permission").values()
                     if refers_to(p["Properties"]["FunctionName"], function_id)
                     and p["Properties"]["Principal"] == "events.amazonaws.com"]
    assert "Fn::GetAtt" in json.dumps(permission["SourceArn"])


def test_the_function_keeps_failed_invocations_and_is_configured_like_the_api(synthesized):
    template, _ = synthesized
    _, function = automations_function(template)
    (api,) = [r for r in of_type(template, "AWS::Lambda::Function").values()
              if r["Properties"]["Handler"] == "sluice_functions.handlers.api.handler"]
    properties = function["Properties"]
    # Then the function has a dead-letter queue for invocations failing after Lambda's retries
    assert "DeadLetterConfig" in properties
    # and the same code, runtime and control-plane settings as the API function
    for key in ("Code", "Runtime", "Architectures"):
        assert properties[key] == api["Properties"][key], key
    assert properties["Environment"] == api["Properties"]["Environment"]
    (invoke_config,) = [r["Properties"] for r in
                        of_type(template, "AWS::Lambda::EventInvokeConfig").values()
                        if refers_to(r["Properties"]["FunctionName"], automations_function(
                            template)[0])]
    assert invoke_config["MaximumRetryAttempts"] == 2


def test_the_role_allows_what_the_actions_call_and_nothing_of_the_api(synthesized):
    template, _ = synthesized
    _, function = automations_function(template)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    policy = policy_of_role(template, role_id)
    actions = actions_of(policy)
    # Then it reads and writes the table, enqueues runs, puts its result events on the bus,
    # and notifies (SNS, the named secrets)
    assert {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "sqs:SendMessage",
            "events:PutEvents", "sns:Publish", "ssm:GetParameter"} <= actions
    (put_events,) = [s for s in policy if "events:PutEvents" in as_list(s["Action"])]
    assert flat(put_events["Resource"]).endswith(f":event-bus/{BUS}")
    (secret,) = [s for s in policy if "ssm:GetParameter" in as_list(s["Action"])]
    assert flat(secret["Resource"]).endswith(f"parameter/{SECRET}")
    # and none of what only the API does (scans, bundles, on-event rules, pool queues' admin)
    assert not actions & {"dynamodb:Scan", "s3:GetObject", "s3:PutObject", "events:PutRule",
                          "sqs:CreateQueue", "sqs:DeleteQueue"}


def test_cdk_nag_finds_nothing_unacknowledged_in_the_automations_construct(synthesized):
    _, findings = synthesized
    assert [f for f in findings if "/Automations/" in f[1]] == []


def test_events_left_in_the_automations_dead_letter_queue_raise_an_alarm(synthesized):
    template, _ = synthesized
    (queue_id,) = [i for i in of_type(template, "AWS::SQS::Queue")
                   if "AutomationsDeadLetters" in i]
    (alarm,) = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("Dimensions") == [
                    {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]]
    # Then one message is enough, and the alarm goes to the alarm topic
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"
    (topic_id,) = [i for i in of_type(template, "AWS::SNS::Topic") if "AlarmTopic" in i]
    assert refers_to(alarm["AlarmActions"], topic_id)

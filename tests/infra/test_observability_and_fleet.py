"""Alarms and dashboard (wired to the metrics the functions really emit), the alarm topic, and
the optional worker fleet."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

import sluice_functions
from sluice_functions.config import DEFAULT_METRICS_NAMESPACE
from sluice_infra.observability import (
    API_SERVER_ERRORS_THRESHOLD,
    CRASHED_RUNS,
    CUSTOM_METRICS,
)

from .conftest import DEFAULT_STACK, FULL_STACK
from .template_reading import flat, refers_to

BOTH = pytest.mark.parametrize("stack", [DEFAULT_STACK, FULL_STACK])
FUNCTIONS_DIR = Path(sluice_functions.__file__).parent
#: `metrics.count("Name", ...)` and friends, and the tick's (("Name", tick.result.x), ...) table.
EMITTED = (re.compile(r'metrics\.(?:count|gauge|timing)\(\s*"(\w+)"'),
           re.compile(r'\("(\w+)", tick\.result\.\w+\)'))


def emitted_metric_names() -> set[str]:
    names = set()
    for path in FUNCTIONS_DIR.rglob("*.py"):
        text = path.read_text()
        for pattern in EMITTED:
            names |= set(pattern.findall(text))
    return names


def test_the_metrics_the_stack_watches_are_ones_the_functions_emit():
    emitted = emitted_metric_names()
    assert {"CrashedRuns", "LateRuns", "FlowRunsClaimed"} <= emitted  # the scan itself works
    assert set(CUSTOM_METRICS) - emitted == set()


def _alarms(synthesized, stack):
    return synthesized.resources("AWS::CloudWatch::Alarm", stack)


@BOTH
def test_every_alarm_notifies_the_alarm_topic(synthesized, stack):
    # The other topic is automations' notification topic (its own test: test_permissions).
    (topic_id,) = [t for t in synthesized.resources("AWS::SNS::Topic", stack)
                   if "AlarmTopic" in t]
    fleet_scaling = {i for i, a in _alarms(synthesized, stack).items()
                     if "worker fleet" in a["Properties"].get("AlarmDescription", "")}
    alarms = {i: a for i, a in _alarms(synthesized, stack).items() if i not in fleet_scaling}
    if stack == DEFAULT_STACK:
        # The essential set (the default): ticks not invoked, API 5xx, API 429s, crashed runs,
        # dead letters of all pools, the automations' dead-letter queue.
        assert len(alarms) == 2 + 1 + 1 + 1 + 1 + 1
    else:
        # The full set: oldest message per pool, dead letters of all pools, crashed, records a
        # tick skipped, API 5xx, function errors and throttles (api, scheduler, monitor,
        # automations), ticks not invoked, API 429s, table throttles, the automations' DLQ.
        pools = 3
        assert len(alarms) == pools + 1 + 1 + 1 + 1 + 4 + 4 + 2 + 1 + 1 + 1
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


@BOTH
def test_one_dead_letter_alarm_watches_every_pool_through_the_monitors_total(synthesized,
                                                                             stack):
    # Pools created after deploy have no alarm of their own: the monitor reports the total of
    # every pool's dead-letter queue (no dimension) and one alarm watches it
    # (tests/infra/test_operations.py checks the metric, the monitor's tests the gauge).
    watching_queues = [a for a in _alarms(synthesized, stack).values()
                       if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
                       and "worker fleet" not in a["Properties"].get("AlarmDescription", "")
                       and "automations' dead-letter" not in a["Properties"]["AlarmDescription"]]
    (total,) = [a["Properties"] for a in _alarms(synthesized, stack).values()
                if a["Properties"].get("MetricName") == "DeadLetterMessages"]
    assert watching_queues == [] and "Dimensions" not in total


def test_the_crashed_runs_alarm_queries_the_metric_the_monitor_emits(synthesized):
    queries = [a["Properties"]["Metrics"][0]["Expression"]
               for a in _alarms(synthesized, DEFAULT_STACK).values() if "Metrics" in a["Properties"]]
    (query,) = [q for q in queries if CRASHED_RUNS in q]
    # Summed over every dimension (the monitor adds `pool`), in the functions' namespace.
    assert query == f'SELECT SUM("{CRASHED_RUNS}") FROM "{DEFAULT_METRICS_NAMESPACE}"'


def test_api_and_lambda_error_alarms(synthesized):
    alarms = [a["Properties"] for a in _alarms(synthesized, DEFAULT_STACK).values()]
    (api_id,) = synthesized.resources("AWS::ApiGatewayV2::Api")
    (server_errors,) = [a for a in alarms if a.get("MetricName") == "5xx"]
    assert server_errors["Namespace"] == "AWS/ApiGateway"
    assert server_errors["Threshold"] == API_SERVER_ERRORS_THRESHOLD
    assert refers_to(server_errors["Dimensions"], api_id)
    # Each function's errors: in the full set only (the essential set pages on API 5xx).
    assert [a for a in alarms if a.get("MetricName") == "Errors"] == []
    alarms = [a["Properties"] for a in _alarms(synthesized, FULL_STACK).values()]
    lambda_errors = [a for a in alarms if a.get("MetricName") == "Errors"]
    functions = {i: f for i, f in synthesized.resources("AWS::Lambda::Function", FULL_STACK).items()
                 if "Automations" in i or "Functions" in i}
    assert len(lambda_errors) == len(functions) == 4  # api, scheduler, monitor, automations
    for function_id in functions:
        assert any(refers_to(a["Dimensions"], function_id) for a in lambda_errors)


def test_the_dashboard_shows_runs_api_functions_and_queues(synthesized):
    (_, dashboard) = synthesized.only("AWS::CloudWatch::Dashboard", FULL_STACK)
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in CUSTOM_METRICS:
        assert f'MetricName=\\\\\\"{metric}\\\\\\"' in body, metric
    for needle in ("AWS/ApiGateway", "4xx", "5xx", "Latency", "AWS/Lambda", "Errors",
                   "Duration", "Throttles", "ApproximateAgeOfOldestMessage",
                   "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
                   "transitions into each state", "Late and crashed runs"):
        assert needle in body, needle


def test_alarm_email_is_subscribed_only_when_given(synthesized):
    assert synthesized.resources("AWS::SNS::Subscription", DEFAULT_STACK) == {}
    (_, subscription) = synthesized.only("AWS::SNS::Subscription", FULL_STACK)
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"


# ---- worker fleet --------------------------------------------------------------------------

def test_no_fleet_unless_asked(synthesized):
    for type_ in ("AWS::AutoScaling::AutoScalingGroup", "AWS::EC2::LaunchTemplate",
                  "AWS::EC2::VPC"):
        assert synthesized.resources(type_, DEFAULT_STACK) == {}


def _user_data(launch_template: dict) -> str:
    """The script, with CloudFormation values in it (the wheel's S3 URL) flattened."""
    value = launch_template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    if isinstance(value, dict):
        _, parts = value["Fn::Join"]
        return "".join(part if isinstance(part, str) else flat(part) for part in parts)
    return value if isinstance(value, str) else base64.b64decode(value).decode()


def test_the_fleet_boots_the_shipped_user_data_with_its_settings(synthesized):
    _, template = synthesized.only("AWS::EC2::LaunchTemplate", FULL_STACK)
    data = template["Properties"]["LaunchTemplateData"]
    script = _user_data(template)
    import sluice_worker

    shipped = (Path(sluice_worker.__file__).parent / "deploy" / "ec2-user-data.sh").read_text()
    shebang, body = shipped.split("\n", 1)
    assert script.startswith(shebang + "\n") and script.endswith(body)
    for line in ("export SLUICE_STACK=SluiceFull", "export SLUICE_POOL=etl",
                 "export SLUICE_LIMIT=8", "export SLUICE_POWER_OFF_ON_FAILURE=true"):
        assert line in script.splitlines(), line
    assert data["InstanceType"] == "m7g.large"
    assert data["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2 only
    # A failed bootstrap powers off: the instance is terminated, not kept as dead weight.
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    (volume,) = data["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True
    # A Graviton type gets the arm64 Amazon Linux 2023 image.
    image_parameter = json.dumps(synthesized.template(FULL_STACK)["Parameters"])
    assert "al2023" in image_parameter and "arm64" in image_parameter


def test_fleet_instances_have_the_worker_policy_and_no_inbound_access(synthesized):
    # The fleet serves pool "etl": its instances get that pool's worker policy, no other.
    policies = synthesized.resources("AWS::IAM::ManagedPolicy", FULL_STACK)
    (policy_id,) = [p for p in policies if p.startswith("ControlPlaneWorkerPolicyEtl")]
    (role,) = [r for r in synthesized.resources("AWS::IAM::Role", FULL_STACK).values()
               if "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]
    assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": policy_id}]
    assert "Policies" not in role["Properties"]
    for group in synthesized.resources("AWS::EC2::SecurityGroup", FULL_STACK).values():
        assert "SecurityGroupIngress" not in group["Properties"]
    assert synthesized.resources("AWS::EC2::SecurityGroupIngress", FULL_STACK) == {}
    assert synthesized.resources("AWS::EC2::NatGateway", FULL_STACK) == {}  # no idle cost
    assert synthesized.resources("AWS::EC2::FlowLog", FULL_STACK) != {}


def test_the_fleet_scales_on_its_pools_queue(synthesized):
    _, group = synthesized.only("AWS::AutoScaling::AutoScalingGroup", FULL_STACK)
    assert (group["Properties"]["MinSize"], group["Properties"]["MaxSize"]) == ("1", "6")
    policies = synthesized.resources("AWS::AutoScaling::ScalingPolicy", FULL_STACK)
    assert {p["Properties"]["PolicyType"] for p in policies.values()} == {"StepScaling"}
    queues = synthesized.resources("AWS::SQS::Queue", FULL_STACK)
    (etl_queue,) = [i for i, q in queues.items() if q["Properties"]["QueueName"] == "full-etl"]
    scaling = {i: a["Properties"] for i, a in _alarms(synthesized, FULL_STACK).items()
               if "worker fleet" in a["Properties"].get("AlarmDescription", "")}
    assert len(scaling) == 2
    by_operator = {a["ComparisonOperator"]: a for a in scaling.values()}
    out = by_operator["GreaterThanOrEqualToThreshold"]
    assert out["MetricName"] == "ApproximateNumberOfMessagesVisible" and out["Threshold"] == 1
    assert refers_to(out["Dimensions"], etl_queue)
    scale_in = by_operator["LessThanOrEqualToThreshold"]
    assert scale_in["Threshold"] == 0 and scale_in["EvaluationPeriods"] == 15
    assert refers_to(scale_in["Metrics"], etl_queue)
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in scale_in["Metrics"]
             if "MetricStat" in m}
    assert names == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
                     "ApproximateNumberOfMessagesDelayed"}
    for alarm in scaling.values():
        (action,) = alarm["AlarmActions"]
        assert action["Ref"] in policies

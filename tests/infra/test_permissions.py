"""IAM: no wildcard actions, data access scoped to this stack's resources, each function only
what its code calls, workers only their pool's queue."""

from __future__ import annotations

import pytest

from sluice_infra.functions import (
    BUNDLE_OBJECT_ACTIONS,
    EVENT_PUT_ACTIONS,
    EVENT_RULE_ACTIONS,
    QUEUE_ADMIN_ACTIONS,
    QUEUE_DELETE_ACTIONS,
    QUEUE_SEND_ACTIONS,
    RUN_LOG_ACTIONS,
    TABLE_ITEM_ACTIONS,
    TABLE_QUERY_ACTIONS,
    TABLE_SCAN_ACTIONS,
)
from sluice_infra.notifications import PUBLISH_ACTIONS
from sluice_infra.worker_policy import WORKER_QUEUE_ACTIONS

from .conftest import DEFAULT_STACK, FULL_STACK
from .template_reading import actions_of, as_list, flat, policy_of_role, refers_to, statements

BOTH = pytest.mark.parametrize("stack", [DEFAULT_STACK, FULL_STACK])
PREFIX = {DEFAULT_STACK: "sluice", FULL_STACK: "full"}


@BOTH
def test_no_statement_allows_a_wildcard_action_or_any_resource(synthesized, stack):
    found = list(statements(synthesized.template(stack)))
    assert len(found) > 10
    assert {statement["Effect"] for _, statement in found} == {"Allow"}
    for owner, statement in found:
        for action in as_list(statement["Action"]):
            assert "*" not in action, (owner, statement)
        assert "*" not in as_list(statement.get("Resource")), (owner, statement)


def _function_roles(synthesized, stack: str) -> dict[str, str]:
    """{"api" | "scheduler" | "monitor": role logical id}."""
    roles = {}
    for function in synthesized.resources("AWS::Lambda::Function", stack).values():
        name = function["Properties"]["Handler"].split(".")[-2]
        roles[name] = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return roles


@BOTH
def test_data_permissions_name_this_stacks_resources_only(synthesized, stack):
    template = synthesized.template(stack)
    (table_id,) = synthesized.resources("AWS::DynamoDB::Table", stack)
    (bucket_id,) = synthesized.resources("AWS::S3::Bucket", stack)
    (automations_dlq,) = [i for i, q in synthesized.resources("AWS::SQS::Queue", stack).items()
                          if q["Properties"]["QueueName"].endswith("-automation_events-dlq")]
    for role_id in _function_roles(synthesized, stack).values():
        for statement in policy_of_role(template, role_id):
            actions = as_list(statement["Action"])
            resources = [flat(r) for r in as_list(statement["Resource"])]
            service = actions[0].split(":")[0]
            assert {a.split(":")[0] for a in actions} == {service}, statement
            if service == "dynamodb":
                assert all(r.startswith(f"<{table_id}.Arn>") for r in resources), statement
                assert all(r in (f"<{table_id}.Arn>", f"<{table_id}.Arn>/index/*")
                           for r in resources)
            elif service == "sqs":
                assert resources in (
                    [f"arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:"
                     f"{PREFIX[stack]}-*"],
                    # the automations function sends what failed to its dead-letter queue
                    [f"<{automations_dlq}.Arn>"]), statement
            elif service == "s3":
                assert all(r.startswith(f"<{bucket_id}.Arn>") for r in resources)
                if "s3:ListBucket" in actions:
                    assert statement["Condition"] == {"StringLike": {"s3:prefix": ["bundles/*"]}}
                else:
                    assert resources == [f"<{bucket_id}.Arn>/bundles/*"]
            elif service == "events" and "events:PutRule" in actions:
                # On-event rules: this stack's prefix on the default bus only.
                assert resources == ["arn:<AWS::Partition>:events:<AWS::Region>:"
                                     f"<AWS::AccountId>:rule/{PREFIX[stack]}-on-event-*"
                                     ], statement
                assert actions == list(EVENT_RULE_ACTIONS)
            elif service == "events":
                # Only the configured bus (the account's default one unless the construct
                # names another): no other bus of the account.
                assert resources == ["arn:<AWS::Partition>:events:<AWS::Region>:"
                                     "<AWS::AccountId>:event-bus/default"], statement
                assert actions == list(EVENT_PUT_ACTIONS)
            elif service == "sns":  # notify actions: the stack's notification topic only
                (topic,) = resources
                assert template["Resources"][topic[1:-1]]["Type"] == "AWS::SNS::Topic", topic
                assert "Notifications" in topic and actions == list(PUBLISH_ACTIONS)
            elif service == "logs":
                (log_group,) = resources
                assert template["Resources"][log_group[1:].split(".")[0]]["Type"] == \
                    "AWS::Logs::LogGroup"
            else:
                raise AssertionError(f"unexpected permission {statement}")


def test_each_function_may_do_what_its_code_does_and_no_more(synthesized):
    template = synthesized.template(DEFAULT_STACK)
    roles = _function_roles(synthesized, DEFAULT_STACK)
    own_logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    shared = {*TABLE_ITEM_ACTIONS, *TABLE_QUERY_ACTIONS, *QUEUE_SEND_ACTIONS, *own_logs,
              *EVENT_PUT_ACTIONS, *PUBLISH_ACTIONS}
    api_only = {*QUEUE_ADMIN_ACTIONS, *QUEUE_DELETE_ACTIONS, *RUN_LOG_ACTIONS,
                *BUNDLE_OBJECT_ACTIONS, "s3:ListBucket", *TABLE_SCAN_ACTIONS,
                *EVENT_RULE_ACTIONS}
    assert actions_of(policy_of_role(template, roles["api"])) == shared | api_only
    for tick in ("scheduler", "monitor"):
        assert actions_of(policy_of_role(template, roles[tick])) == shared
    # The API reads and writes the run log group only; functions write their own log group.
    (api_function,) = [f for f in synthesized.resources("AWS::Lambda::Function").values()
                       if f["Properties"]["Handler"].endswith("api.handler")]
    own_group = api_function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    for statement in policy_of_role(template, roles["api"]):
        if "logs:GetLogEvents" in as_list(statement["Action"]):
            assert not refers_to(statement["Resource"], own_group)
        elif set(as_list(statement["Action"])) == own_logs:
            assert refers_to(statement["Resource"], own_group)


# ---- the workers' managed policies (which routes: tests/security/test_iam_matrix.py) ----------

def worker_policies(synthesized, stack: str) -> dict[str, list[dict]]:
    """{logical id: statements} of the stack's worker policies (one per pool)."""
    return {logical_id: policy["Properties"]["PolicyDocument"]["Statement"]
            for logical_id, policy in synthesized.resources("AWS::IAM::ManagedPolicy",
                                                            stack).items()}


@BOTH
def test_each_pools_workers_receive_from_its_queue_only(synthesized, stack):
    policies = worker_policies(synthesized, stack)
    queues = {logical_id: queue for logical_id, queue in
              synthesized.resources("AWS::SQS::Queue", stack).items()
              if not queue["Properties"]["QueueName"].endswith("-dlq")}
    assert len(policies) == len(queues) == (1 if stack == DEFAULT_STACK else 3)
    taken = []
    for policy in policies.values():
        # No S3: bundles come through presigned URLs the API signs for the pool's own code.
        assert actions_of(policy) == {*WORKER_QUEUE_ACTIONS, "execute-api:Invoke",
                                      "cloudformation:DescribeStacks"}
        for statement in policy:
            resources = [flat(r) for r in as_list(statement["Resource"])]
            if "sqs:ReceiveMessage" in as_list(statement["Action"]):
                # The exact ARN of one pool's queue: no prefix another stack (`sluice-dev`)
                # or the pool's dead-letter queue could match.
                (queue,) = resources
                assert queue.endswith(".Arn>") and queue[1:-5] in queues, queue
                taken.append(queue)
            elif statement["Action"] == "cloudformation:DescribeStacks":
                assert resources == ["<AWS::StackId>"]
    assert len(set(taken)) == len(policies)  # each policy its own pool's queue


def test_notify_actions_reach_named_topics_and_secrets_only():
    """Given topics and secrets named for automations, when synthesized, then every function
    may publish to those topics and read exactly those secrets (SSM, then Secrets Manager)."""
    from aws_cdk import App

    from sluice_infra.app import build_stack

    app = App(context={"sluice:stackName": "SluiceNotify",
                       "sluice:notificationTopicArns":
                           "arn:aws:sns:eu-west-1:123456789012:ops-chat",
                       "sluice:notificationSecrets": "slack-url,/hooks/signing-key"})
    stack = build_stack(app)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    grants: dict[str, set[str]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            for action in as_list(statement["Action"]):
                if action.split(":")[0] in ("sns", "ssm", "secretsmanager"):
                    grants.setdefault(action, set()).update(
                        flat(r) for r in as_list(statement["Resource"]))
    assert "arn:aws:sns:eu-west-1:123456789012:ops-chat" in grants["sns:Publish"]
    assert sorted(r.rsplit(":", 1)[-1] for r in grants["ssm:GetParameter"]) == [
        "parameter/hooks/signing-key", "parameter/slack-url"]
    assert sorted(r.rsplit(":", 1)[-1] for r in grants["secretsmanager:GetSecretValue"]) == [
        "hooks/signing-key-??????", "slack-url-??????"]


@BOTH
def test_eventbridge_may_invoke_the_api_from_on_event_rules_only(synthesized, stack):
    # The API function's resource policy: events.amazonaws.com, from this stack's rules only
    (api_id,) = [i for i, f in synthesized.resources("AWS::Lambda::Function", stack).items()
                 if f["Properties"]["Handler"].endswith("api.handler")]
    from_events = [p["Properties"] for p in synthesized.resources("AWS::Lambda::Permission",
                                                                  stack).values()
                   if p["Properties"]["Principal"] == "events.amazonaws.com"
                   and refers_to(p["Properties"]["FunctionName"], api_id)]
    assert [flat(p["SourceArn"]) for p in from_events] == [
        f"arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/"
        f"{PREFIX[stack]}-on-event-*"]

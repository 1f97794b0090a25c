"""The synthesized control plane: API, functions, table, queues, bucket, logs, outputs."""

from __future__ import annotations

import importlib
import json
import re

import pytest

from sluice import stack_outputs
from sluice_functions.adapters.aws.s3_bundles import BUNDLE_PREFIX
from sluice_functions.adapters.aws.sqs_queue import DEAD_LETTER_RETENTION_SECONDS
from sluice_functions.config import (
    DEFAULT_MAX_RECEIVE_COUNT,
    DEFAULT_QUEUE_VISIBILITY_TIMEOUT_SECONDS,
    ENV_SCHEMA_VERSION,
    TTL_ATTRIBUTE,
    ControlPlaneSettings,
    pool_queue_names,
    table_key_schema,
)
from sluice_infra.asset import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from sluice_infra.automation_function import HANDLER as AUTOMATIONS_HANDLER
from sluice_infra.automation_function import dead_letter_queue_name
from sluice_infra.functions import SPECS
from sluice_infra.http_api import ACCESS_LOG_FIELDS, Throttle
from sluice_infra.routes import GATEWAY_ROUTES

from .conftest import DEFAULT_STACK, FULL_STACK
from .template_reading import refers_to

BOTH = pytest.mark.parametrize("stack", [DEFAULT_STACK, FULL_STACK])
PREFIX = {DEFAULT_STACK: "sluice", FULL_STACK: "full"}
POOLS = {DEFAULT_STACK: ["default"], FULL_STACK: ["default", "etl", "ml"]}


# ---- HTTP API --------------------------------------------------------------------------------

@BOTH
def test_every_route_requires_iam_authorization(synthesized, stack):
    routes = synthesized.resources("AWS::ApiGatewayV2::Route", stack)
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {
        f"{route.method} {route.path}" for route in GATEWAY_ROUTES}
    for route in routes.values():
        assert route["Properties"]["AuthorizationType"] == "AWS_IAM", route


def _served(method: str, path: str) -> bool:
    for route in GATEWAY_ROUTES:
        if route.method not in ("ANY", method.upper()):
            continue
        if route.path.endswith("/{proxy+}"):
            if path.startswith(route.path.removesuffix("{proxy+}")):
                return True
        elif route.path == path:
            return True
    return False


def test_every_path_of_the_api_is_served_by_a_gateway_route():
    from sluice_functions.api import build_app
    from sluice_functions.ports import ControlPlanePorts

    app = build_app(ControlPlanePorts(store=None, queue=None, logs=None, metrics=None))
    paths = app.get_openapi_schema().paths
    operations = [(method, path) for path, item in paths.items()
                  for method in item.model_dump(exclude_none=True)]
    operations.append(("get", "/openapi.json"))  # served, though not in its own document
    assert len(operations) > 25
    assert [op for op in operations if not _served(*op)] == []
    # And the gateway refuses what the API does not serve, without invoking Lambda.
    assert not _served("get", "/admin") and not _served("delete", "/health")


@BOTH
def test_the_stage_logs_every_request_as_json_and_throttles(synthesized, stack):
    _, stage = synthesized.only("AWS::ApiGatewayV2::Stage", stack)
    properties = stage["Properties"]
    assert properties["StageName"] == "$default" and properties["AutoDeploy"] is True
    assert properties["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": Throttle().burst, "ThrottlingRateLimit": Throttle().rate_per_second}
    access = properties["AccessLogSettings"]
    assert json.loads(access["Format"]) == ACCESS_LOG_FIELDS
    (log_group_id,) = access["DestinationArn"]["Fn::GetAtt"][:1]
    assert synthesized.template(stack)["Resources"][log_group_id]["Type"] == "AWS::Logs::LogGroup"


def test_the_integration_sends_payload_v2_events_to_the_api_function(synthesized):
    _, integration = synthesized.only("AWS::ApiGatewayV2::Integration")
    api_function = _function_id(synthesized, DEFAULT_STACK, "sluice_functions.handlers.api.handler")
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    assert refers_to(integration["Properties"]["IntegrationUri"], api_function)


# ---- functions -------------------------------------------------------------------------------

def _function_id(synthesized, stack: str, handler: str) -> str:
    (logical_id,) = [i for i, f in synthesized.resources("AWS::Lambda::Function", stack).items()
                     if f["Properties"]["Handler"] == handler]
    return logical_id


@BOTH
def test_three_functions_from_one_asset_each_with_its_handler(synthesized, stack):
    functions = synthesized.resources("AWS::Lambda::Function", stack)
    # (and the automations function's, `test_automation_function.py`)
    handlers = [*(spec.handler for spec in SPECS), AUTOMATIONS_HANDLER]
    assert sorted(f["Properties"]["Handler"] for f in functions.values()) == sorted(handlers)
    assert len({json.dumps(f["Properties"]["Code"]) for f in functions.values()}) == 1
    for handler in handlers:  # each handler is a callable of an importable module
        module, _, name = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


@BOTH
def test_functions_run_a_current_python_on_arm64_with_structured_logs(synthesized, stack):
    template = synthesized.template(stack)
    for function in synthesized.resources("AWS::Lambda::Function", stack).values():
        properties = function["Properties"]
        assert properties["Runtime"] == LAMBDA_RUNTIME.name == "python3.13"
        assert properties["Architectures"] == [LAMBDA_ARCHITECTURE.name] == ["arm64"]
        logging = properties["LoggingConfig"]
        assert logging["LogFormat"] == "JSON"
        log_group = template["Resources"][logging["LogGroup"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] == (30 if stack == DEFAULT_STACK else 7)
        assert properties["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "INFO"


@BOTH
def test_function_environment_is_the_shared_settings_pointing_at_this_stack(synthesized, stack):
    template = synthesized.template(stack)
    resources = template["Resources"]
    aliases = {str(field.validation_alias) for field in ControlPlaneSettings.model_fields.values()}
    default_queue, default_dlq = pool_queue_names(PREFIX[stack], "default")
    for function in synthesized.resources("AWS::Lambda::Function", stack).values():
        env = function["Properties"]["Environment"]["Variables"]
        sluice_vars = {k: v for k, v in env.items() if k.startswith("SLUICE_")}
        # Every setting of ControlPlaneSettings is set (none left to a default), nothing else
        # but the schema version the code understands (informational: tests/infra/test_upgrades).
        assert set(sluice_vars) == aliases | {ENV_SCHEMA_VERSION}

        def resource_of(name: str) -> dict:
            return resources[env[name]["Ref"]]

        assert resource_of("SLUICE_TABLE_NAME")["Type"] == "AWS::DynamoDB::Table"
        assert resource_of("SLUICE_DEFAULT_POOL_QUEUE_URL")["Properties"]["QueueName"] == \
            default_queue
        assert resource_of("SLUICE_DEFAULT_POOL_DLQ_URL")["Properties"]["QueueName"] == \
            default_dlq
        assert resource_of("SLUICE_BUNDLE_BUCKET")["Type"] == "AWS::S3::Bucket"
        assert resource_of("SLUICE_RUN_LOG_GROUP")["Type"] == "AWS::Logs::LogGroup"
        assert env["SLUICE_QUEUE_PREFIX"] == env["SLUICE_STACK_PREFIX"] == PREFIX[stack]
        assert env["SLUICE_RETENTION_DAYS"] == ("30" if stack == DEFAULT_STACK else "14")
        # The functions' own settings class reads it back (tokens stand in for the names).
        literal = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in env.items()}
        settings = ControlPlaneSettings.model_validate(literal)
        assert settings.effective_queue_prefix == PREFIX[stack]


def test_scheduler_and_monitor_tick_every_minute(synthesized):
    rules = synthesized.resources("AWS::Events::Rule")
    ticked = set()
    for rule in rules.values():
        if "EventPattern" in rule["Properties"]:  # the automations rule: not a tick
            continue
        assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
        (target,) = rule["Properties"]["Targets"]
        ticked.add(target["Arn"]["Fn::GetAtt"][0])
    handlers = {"sluice_functions.handlers.scheduler.handler",
                "sluice_functions.handlers.monitor.handler"}
    assert ticked == {_function_id(synthesized, DEFAULT_STACK, h) for h in handlers}
    permissions = synthesized.resources("AWS::Lambda::Permission")
    for function_id in ticked:
        assert any(p["Properties"]["Principal"] == "events.amazonaws.com"
                   and refers_to(p["Properties"]["FunctionName"], function_id)
                   for p in permissions.values())


# ---- data ------------------------------------------------------------------------------------

@BOTH
def test_the_table_has_the_shared_key_schema_pitr_ttl_and_encryption(synthesized, stack):
    logical_id, table = synthesized.only("AWS::DynamoDB::Table", stack)
    properties = table["Properties"]
    expected = table_key_schema()
    assert properties["KeySchema"] == expected["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == \
        expected["AttributeDefinitions"]
    assert sorted(properties["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"]) == sorted(
        expected["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"])
    assert properties["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE,
                                                     "Enabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    retained = stack == DEFAULT_STACK
    assert table["DeletionPolicy"] == ("Retain" if retained else "Delete")
    assert properties.get("DeletionProtectionEnabled", False) is retained


@BOTH
def test_each_pool_has_an_encrypted_queue_and_dead_letter_queue(synthesized, stack):
    queues = synthesized.resources("AWS::SQS::Queue", stack)
    by_name = {q["Properties"]["QueueName"]: (i, q["Properties"]) for i, q in queues.items()}
    expected_names = {name for pool in POOLS[stack]
                      for name in pool_queue_names(PREFIX[stack], pool)}
    assert set(by_name) == expected_names | {dead_letter_queue_name(PREFIX[stack])}
    for pool in POOLS[stack]:
        queue_name, dlq_name = pool_queue_names(PREFIX[stack], pool)
        _, queue = by_name[queue_name]
        dlq_id, dlq = by_name[dlq_name]
        # Same settings as SqsRunQueue.create_pool_queue gives the queues it creates.
        assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                                          "maxReceiveCount": DEFAULT_MAX_RECEIVE_COUNT}
        assert queue["VisibilityTimeout"] == DEFAULT_QUEUE_VISIBILITY_TIMEOUT_SECONDS
        assert dlq["MessageRetentionPeriod"] == DEAD_LETTER_RETENTION_SECONDS
        assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    # Every queue that is not a dead-letter queue has one.
    dead_letter_ids = {i for i, q in queues.items() if q["Properties"]["QueueName"].endswith("-dlq")}
    for logical_id, queue in queues.items():
        if logical_id not in dead_letter_ids:
            assert queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] \
                in dead_letter_ids


def _denies_insecure_transport(statement: dict) -> bool:
    return (statement["Effect"] == "Deny"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and statement["Principal"] in ({"AWS": "*"}, "*"))


@BOTH
def test_every_queue_topic_and_bucket_refuses_requests_without_tls(synthesized, stack):
    policies = {
        "AWS::SQS::QueuePolicy": ("AWS::SQS::Queue", "Queues"),
        "AWS::SNS::TopicPolicy": ("AWS::SNS::Topic", "Topics"),
        "AWS::S3::BucketPolicy": ("AWS::S3::Bucket", "Bucket"),
    }
    for policy_type, (target_type, key) in policies.items():
        protected = set()
        for policy in synthesized.resources(policy_type, stack).values():
            if any(_denies_insecure_transport(s)
                   for s in policy["Properties"]["PolicyDocument"]["Statement"]):
                targets = policy["Properties"][key]
                protected |= {t["Ref"] for t in (targets if isinstance(targets, list)
                                                  else [targets])}
        assert protected == set(synthesized.resources(target_type, stack)), policy_type


@BOTH
def test_the_bundle_bucket_is_private_encrypted_and_cleans_up(synthesized, stack):
    _, bucket = synthesized.only("AWS::S3::Bucket", stack)
    properties = bucket["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True}
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1}
    assert BUNDLE_PREFIX == "bundles/"  # the prefix the construct's grants and rules use


@BOTH
def test_every_log_group_has_a_retention(synthesized, stack):
    log_groups = synthesized.resources("AWS::Logs::LogGroup", stack)
    assert len(log_groups) >= 5  # runs, api access, three functions (+ VPC flow logs)
    days = 30 if stack == DEFAULT_STACK else 7
    assert {g["Properties"]["RetentionInDays"] for g in log_groups.values()} == {days}


# ---- outputs ---------------------------------------------------------------------------------

@BOTH
def test_outputs_are_what_sluice_profile_create_reads(synthesized, stack):
    outputs = synthesized.template(stack)["Outputs"]
    assert set(outputs) == set(stack_outputs.ALL)
    api_url = json.dumps(outputs[stack_outputs.API_URL]["Value"])
    (api_id,) = synthesized.resources("AWS::ApiGatewayV2::Api", stack)
    assert refers_to(outputs[stack_outputs.API_URL]["Value"], api_id)
    assert ".execute-api." in api_url and api_url.startswith('{"Fn::Join": ["", ["https://"')
    assert outputs[stack_outputs.REGION]["Value"] == {"Ref": "AWS::Region"}
    queue_urls = json.dumps(outputs[stack_outputs.QUEUE_URLS]["Value"])
    for pool in POOLS[stack]:
        assert re.search(rf'\\"{pool}\\":\\"', queue_urls), pool
    policies = synthesized.resources("AWS::IAM::ManagedPolicy", stack)
    # The default pool's policy keeps the logical id it had before policies were per pool.
    (default_policy,) = [p for p in policies if re.fullmatch(r"ControlPlaneWorkerPolicy[0-9A-F]{8}",
                                                              p)]
    assert outputs[stack_outputs.WORKER_POLICY_ARN]["Value"] == {"Ref": default_policy}
    per_pool = json.dumps(outputs[stack_outputs.WORKER_POLICY_ARNS]["Value"])
    for pool in POOLS[stack]:
        assert re.search(rf'\\"{pool}\\":\\"', per_pool), pool
    assert all(f'"Ref": "{policy_id}"' in per_pool for policy_id in policies)

"""Control-plane settings and the DynamoDB key schema: defined once, read by the Lambda
functions, the moto fixtures and the CDK construct."""

from __future__ import annotations

import subprocess
import sys

import boto3
import moto
import pytest

from sluice_functions import ports
from sluice_functions.adapters.aws import EmfMetrics, build_aws_ports
from sluice_functions.adapters.aws.clients import AwsClients
from sluice_functions.config import (
    ENV_RETENTION_DAYS,
    ENV_TABLE_NAME,
    GLOBAL_INDEXES,
    RUN_FILTER_ATTRIBUTES,
    ControlPlaneSettings,
    pool_queue_names,
    table_key_schema,
)

REGION = "us-east-1"
TABLE = "sluice-test"


@pytest.fixture
def aws():
    with moto.mock_aws():
        yield


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName=TABLE, **table_key_schema())
    return client


# ---- configuration and key schema ---------------------------------------------------------------


def test_the_key_schema_creates_the_table_with_its_indexes(dynamodb):
    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {index.name for index in GLOBAL_INDEXES}
    for index in GLOBAL_INDEXES:
        projection = indexes[index.name]["Projection"]
        assert projection["ProjectionType"] == "INCLUDE"
        assert set(projection["NonKeyAttributes"]) | {index.partition_key} >= set(
            RUN_FILTER_ATTRIBUTES)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_config_imports_without_boto3_or_powertools():
    code = ("import sys, sluice_functions.config; "
            "print(sorted(m for m in ('boto3', 'botocore', 'aws_lambda_powertools') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_read_their_environment_variables_and_reproduce_them(monkeypatch):
    monkeypatch.setenv(ENV_TABLE_NAME, "runs")
    monkeypatch.setenv(ENV_RETENTION_DAYS, "9")
    settings = ControlPlaneSettings()
    assert (settings.table_name, settings.retention_days) == ("runs", 9)
    assert settings.effective_queue_prefix == "sluice"
    assert settings.effective_run_log_group == "/sluice/flow-runs"
    monkeypatch.delenv(ENV_TABLE_NAME)
    monkeypatch.delenv(ENV_RETENTION_DAYS)
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert ControlPlaneSettings() == settings
    assert settings.max_receive_count == ports.DEFAULT_MAX_RECEIVE_COUNT


def test_build_aws_ports_wires_settings_into_the_adapters(aws):
    settings = ControlPlaneSettings(table_name=TABLE, stack_prefix="acme",
                                    default_pool_queue_url="https://q/default",
                                    default_pool_dlq_url="https://q/default-dlq")
    clients = AwsClients(*(boto3.client(service, region_name=REGION)
                           for service in ("dynamodb", "sqs", "logs")))
    built = build_aws_ports(settings, clients)
    # The stack's own default-pool queues are used as they are, never created.
    assert built.queue.create_pool_queue("default").queue_url == "https://q/default"
    assert clients.sqs.list_queues().get("QueueUrls", []) == []
    assert built.queue.create_pool_queue("gpu").queue_url.endswith("/acme-gpu")
    assert isinstance(built.metrics, EmfMetrics)


def test_pool_queue_names_fit_sqs_limits():
    assert pool_queue_names("sluice", "etl") == ("sluice-etl", "sluice-etl-dlq")
    with pytest.raises(ValueError, match="80 characters"):
        pool_queue_names("p" * 40, "q" * 40)

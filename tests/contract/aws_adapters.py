"""The AWS adapters under moto, for the contract suites (see conftest.py).

Each factory is a generator: it starts a moto mock, creates the table/queues/log group the
CDK stack would, yields one adapter, and stops the mock on close. Clients are created inside the
mock. The table comes from `table_key_schema()`, the same definition the CDK construct uses.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import moto

from sluice_functions.adapters.aws import (
    CloudWatchLogSink,
    DynamoRunStore,
    EmfMetrics,
    SqsRunQueue,
)
from sluice_functions.config import TTL_ATTRIBUTE, table_key_schema

REGION = "us-east-1"
TABLE_NAME = "sluice-contract"
QUEUE_PREFIX = "sluice-contract"
LOG_GROUP = "/sluice-contract/flow-runs"
RETENTION_DAYS = 30


def create_table(client, table_name: str = TABLE_NAME) -> None:
    """The stack's table: keys and indexes from `table_key_schema()`, TTL enabled."""
    client.create_table(TableName=table_name, **table_key_schema())
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


def make_store() -> Iterator[DynamoRunStore]:
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client)
        yield DynamoRunStore(client, TABLE_NAME, retention_days=RETENTION_DAYS)


def make_queue() -> Iterator[SqsRunQueue]:
    with moto.mock_aws():
        yield SqsRunQueue(boto3.client("sqs", region_name=REGION), QUEUE_PREFIX)


def make_logs() -> Iterator[CloudWatchLogSink]:
    with moto.mock_aws():
        client = boto3.client("logs", region_name=REGION)
        client.create_log_group(logGroupName=LOG_GROUP)
        client.put_retention_policy(logGroupName=LOG_GROUP, retentionInDays=RETENTION_DAYS)
        yield CloudWatchLogSink(client, LOG_GROUP)


def make_metrics() -> Iterator[EmfMetrics]:
    # EMF metrics are log lines on stdout: no AWS call to mock.
    yield EmfMetrics("SluiceContract")

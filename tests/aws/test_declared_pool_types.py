"""A pool whose queue the stack made for a `LambdaPool` or `FargatePool` (tagged with its kind)
is recorded with that kind the first time the control plane meets it: no `sluice pool create
--type` is needed after the deploy. Under moto: DynamoDB + SQS."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import moto
import pytest

from sluice_functions import service
from sluice_functions.adapters.aws import DynamoRunStore, SqsRunQueue
from sluice_functions.config import POOL_TYPE_TAG, table_key_schema

REGION = "us-east-1"
TABLE = "sluice-declared-pools"


@pytest.fixture
def aws() -> Iterator[None]:
    with moto.mock_aws():
        yield


@pytest.fixture
def plane(aws):  # noqa: ANN201
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(TableName=TABLE, **table_key_schema())
    sqs = boto3.client("sqs", region_name=REGION)
    return DynamoRunStore(dynamodb, TABLE), SqsRunQueue(sqs, "stack"), sqs


@pytest.mark.parametrize("kind", ["lambda", "fargate"])
def test_a_pool_whose_stack_queue_declares_its_kind_is_adopted_with_it(plane, kind):
    store, queue, sqs = plane
    # Given the stack made the pool's queues and tagged the queue with the pool's kind
    sqs.create_queue(QueueName="stack-quick-dlq")
    sqs.create_queue(QueueName="stack-quick", tags={POOL_TYPE_TAG: kind})

    # When the control plane first meets the pool (a worker, an operator or a deployment)
    pool = service.get_pool("quick", store=store, queue=queue)

    # Then it is recorded as that kind, and stays so
    assert pool.type == kind
    assert store.get_pool("quick").type == kind


def test_an_untagged_or_oddly_tagged_queue_is_a_worker_pool(plane):
    store, queue, sqs = plane
    sqs.create_queue(QueueName="stack-plain")
    sqs.create_queue(QueueName="stack-odd", tags={POOL_TYPE_TAG: "kubernetes"})
    assert queue.declared_pool_type("plain") is None and queue.declared_pool_type("odd") is None
    assert service.ensure_pool("plain", store=store, queue=queue).type == "worker"
    assert service.ensure_pool("odd", store=store, queue=queue).type == "worker"
    # A pool without any queue declares nothing either
    assert queue.declared_pool_type("nowhere") is None

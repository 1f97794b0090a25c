"""What the moto-backed DynamoDB tests share: the control plane's table, made inside the mock
for each test, the write units DynamoDB would bill for an item, and data of an earlier schema
with the store wired to it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto
import pytest

from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.config import (
    COMPRESSED_ITEMS_SCHEMA,
    LEAN_RUN_DOCUMENT_SCHEMA,
    SCHEMA_VERSION_ATTRIBUTE,
    table_key_schema,
)
from sluice_functions.migrations.dynamo import DynamoMigrationBackend
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate

#: DynamoDB bills one write unit per started KB of the item.
WRITE_UNIT_BYTES = 1024


@pytest.fixture
def dynamodb(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A moto DynamoDB client holding the table of `config.table_key_schema()`, named by the
    test module's `TABLE` (in its `REGION`, else us-east-1)."""
    with moto.mock_aws():
        client = boto3.client("dynamodb",
                              region_name=getattr(request.module, "REGION", "us-east-1"))
        client.create_table(TableName=request.module.TABLE, **table_key_schema())
        yield client


def _value_size(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return len(data)
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "SS":
        return sum(len(x.encode()) for x in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in data)
    raise AssertionError(f"unexpected attribute type {kind}")


def billed_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (https://docs.aws.
    amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


@pytest.fixture
def item_size() -> Callable[[dict[str, Any]], int]:
    return billed_size


@pytest.fixture
def write_units() -> Callable[[dict[str, Any]], int]:
    """Write units of a write of an item (per started KB, at least one)."""
    return lambda item: max(1, math.ceil(billed_size(item) / WRITE_UNIT_BYTES))


@pytest.fixture
def data_at(dynamodb: Any, request: pytest.FixtureRequest) -> Callable[[int], Any]:
    """`data_at(version)`: the table's items as the release of schema `version` left them (their
    stamps removed, then migrated to `version`); returns the migration backend."""
    table = request.module.TABLE

    def bring(version: int) -> DynamoMigrationBackend:
        backend = DynamoMigrationBackend(dynamodb, table)
        for item in dynamodb.scan(TableName=table)["Items"]:
            dynamodb.update_item(TableName=table, Key={k: item[k] for k in ("pk", "sk")},
                                 UpdateExpression="REMOVE #sv",
                                 ExpressionAttributeNames={"#sv": SCHEMA_VERSION_ATTRIBUTE})
        migrate(backend, to_version=version)
        return backend

    return bring


@pytest.fixture
def gated_store(dynamodb: Any, request: pytest.FixtureRequest
                ) -> Callable[[SchemaGuard], DynamoRunStore]:
    """`gated_store(guard)`: the run store wired to the data's version as the composition root
    (`clients.build_aws_ports`) wires it."""
    table = request.module.TABLE
    return lambda guard: DynamoRunStore(
        dynamodb, table,
        compressed_items=lambda: guard.data_version() >= COMPRESSED_ITEMS_SCHEMA,
        lean_documents=lambda: guard.data_version() >= LEAN_RUN_DOCUMENT_SCHEMA)

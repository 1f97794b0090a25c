"""What the moto-backed DynamoDB tests share: the control plane's table, made inside the mock
for each test, and the write units DynamoDB would bill for an item."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto
import pytest

from sluice_functions.config import table_key_schema

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

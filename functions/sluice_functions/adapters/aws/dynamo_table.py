"""Requests to the single table: conditional writes and transactions, paginated Queries with
opaque cursors, counts and batched gets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sluice.exceptions import Throttled

from ...config import (SCHEMA_VERSION, SCHEMA_VERSION_ATTRIBUTE, TABLE_PARTITION_KEY,
                       TABLE_SORT_KEY, GlobalIndex)
from ..pages import check_page_limit
from .dynamo_items import Item, decode_cursor, encode_cursor, key_of, n, stamped
from .errors import aws_errors

#: BatchGetItem takes at most 100 keys per request:
#: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
MAX_BATCH_GET_KEYS = 100
#: A filtered page stops after this many Query requests and returns what it found with a cursor,
#: so a selective filter cannot turn one API call into a scan of the whole index.
MAX_QUERY_REQUESTS_PER_PAGE = 8
#: UnprocessedKeys are retried this often, with exponential backoff from the base delay, before
#: the read gives up with `Throttled`.
MAX_UNPROCESSED_RETRIES = 5
UNPROCESSED_RETRY_BASE_SECONDS = 0.05


@dataclass
class KeyQuery:
    """One Query: a partition of the table or of an index, an optional sort-key condition and
    filter, and the name that binds cursors to it."""

    name: str
    partition: tuple[str, str]
    index: GlobalIndex | None = None
    #: Extra KeyConditionExpression on the sort key, e.g. "#sk BETWEEN :lo AND :hi".
    sort_condition: str | None = None
    filter_expression: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    forward: bool = True

    @property
    def key_attributes(self) -> tuple[str, ...]:
        table_keys = (TABLE_PARTITION_KEY, TABLE_SORT_KEY)
        if self.index is None:
            return table_keys
        return table_keys + (self.index.partition_key, self.index.sort_key)

    def request(self, table_name: str) -> dict[str, Any]:
        names = {"#qpk": self.partition[0], **self.names}
        values = {":qpk": {"S": self.partition[1]}, **self.values}
        condition = "#qpk = :qpk"
        if self.sort_condition:
            condition += f" AND {self.sort_condition}"
        params: dict[str, Any] = {
            "TableName": table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": self.forward,
        }
        if self.index is None:
            params["ConsistentRead"] = True  # GSIs only offer eventually consistent reads
        else:
            params["IndexName"] = self.index.name
        if self.filter_expression:
            params["FilterExpression"] = self.filter_expression
        return params


#: Condition of a write that must create its item.
NOT_EXISTS = "attribute_not_exists(#pk)"
EXISTS = "attribute_exists(#pk)"
NAMES_PK = {"#pk": TABLE_PARTITION_KEY}


class SingleTable:
    """The requests the run store makes to one table, through an injected DynamoDB client."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table_name = table_name

    # ---- writes ------------------------------------------------------------------------------

    def put_request(self, item: Item, condition: str | None = None,
                    names: dict[str, str] | None = None,
                    values: dict[str, Any] | None = None) -> dict[str, Any]:
        """A PutItem request (also a TransactWriteItems "Put"); `names` default to `#pk`.
        Every item written is stamped with the layout version (`dynamo_items.stamped`)."""
        request: dict[str, Any] = {"TableName": self._table_name, "Item": stamped(item)}
        if condition:
            request["ConditionExpression"] = condition
            request["ExpressionAttributeNames"] = names or NAMES_PK
            if values:
                request["ExpressionAttributeValues"] = values
        return request

    def delete_request(self, key: Item, condition: str | None,
                       names: dict[str, str] | None = None,
                       values: dict[str, Any] | None = None) -> dict[str, Any]:
        """A DeleteItem request (also a TransactWriteItems "Delete"); None: unconditional."""
        request: dict[str, Any] = {"TableName": self._table_name, "Key": key}
        if condition:
            request["ConditionExpression"] = condition
            request["ExpressionAttributeNames"] = names or NAMES_PK
        if values:
            request["ExpressionAttributeValues"] = values
        return request

    def put(self, request: dict[str, Any], operation: str) -> None:
        with aws_errors(operation):
            self._client.put_item(**request)

    def update(self, key: Item, expression: str, names: dict[str, str],
               values: dict[str, Any], operation: str) -> Item:
        """An unconditional UpdateItem; returns the item as stored. The item is stamped with
        the layout version too: a SET of `sv` goes in front of the caller's clauses."""
        rest = expression[len("SET "):] if expression.startswith("SET ") else None
        expression = (f"SET #sv = :sv, {rest}" if rest is not None
                      else f"SET #sv = :sv {expression}")
        names = {**names, "#sv": SCHEMA_VERSION_ATTRIBUTE}
        values = {**values, ":sv": n(SCHEMA_VERSION)}
        with aws_errors(operation):
            response = self._client.update_item(
                TableName=self._table_name, Key=key, UpdateExpression=expression,
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW")
        return response["Attributes"]

    def update_request(self, key: Item, expression: str, names: dict[str, str],
                       values: dict[str, Any], condition: str) -> dict[str, Any]:
        """A conditional UpdateItem request (also a TransactWriteItems "Update"), stamped with
        the layout version like every write. `expression` starts with its SET clause."""
        if not expression.startswith("SET "):
            raise ValueError("an update request's expression starts with SET")
        return {"TableName": self._table_name, "Key": key,
                "UpdateExpression": f"SET #sv = :sv, {expression[len('SET '):]}",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {**names, "#sv": SCHEMA_VERSION_ATTRIBUTE},
                "ExpressionAttributeValues": {**values, ":sv": n(SCHEMA_VERSION)}}

    def update_if(self, request: dict[str, Any], operation: str) -> None:
        """Send an `update_request`; a failed condition raises `Conflict`."""
        with aws_errors(operation):
            self._client.update_item(**request)

    def transact(self, operation: str, *writes: tuple[str, dict[str, Any]]) -> None:
        """One TransactWriteItems of ("Put" | "Update" | "Delete", request) pairs. botocore fills in the
        ClientRequestToken, so its own retry of a request that did land is not a conflict.
        A cancellation raises `Conflict` with the per-item reasons in `details["reasons"]`."""
        with aws_errors(operation):
            self._client.transact_write_items(
                TransactItems=[{kind: request} for kind, request in writes])

    # ---- reads -------------------------------------------------------------------------------

    @property
    def table_name(self) -> str:
        return self._table_name

    def query_page(self, params: dict[str, Any], operation: str) -> dict[str, Any]:
        """One Query request as given (the caller pages with `ExclusiveStartKey`)."""
        with aws_errors(operation):
            return self._client.query(**params)

    def scan_page(self, params: dict[str, Any], operation: str) -> dict[str, Any]:
        """One Scan request as given: only for bounded operator look-ups, never a hot path."""
        with aws_errors(operation):
            return self._client.scan(**params)

    def get(self, key: Item, operation: str) -> Item | None:
        with aws_errors(operation):
            response = self._client.get_item(
                TableName=self._table_name, Key=key, ConsistentRead=True
            )
        return response.get("Item")

    def page(self, query: KeyQuery, *, limit: int,
             cursor: str | None) -> tuple[list[Item], str | None]:
        """Up to `limit` matching items and a cursor that is None only when nothing follows.

        Reads one item beyond `limit` so that an exhausted listing says so (no empty last page);
        the cursor is the key of the last item returned, which is what LastEvaluatedKey would be.
        """
        check_page_limit(limit)
        params = query.request(self._table_name)
        start = (decode_cursor(cursor, query.name, query.key_attributes, query.partition)
                 if cursor else None)
        found: list[Item] = []
        for _ in range(MAX_QUERY_REQUESTS_PER_PAGE):
            params["Limit"] = limit + 1 - len(found)
            if start is not None:
                params["ExclusiveStartKey"] = start
            with aws_errors(f"query {query.name}"):
                response = self._client.query(**params)
            found.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if len(found) > limit:
                found = found[:limit]
                return found, encode_cursor(query.name, key_of(found[-1], query.key_attributes))
            if start is None:
                return found, None
        # Filter kept too few items within the request budget: hand back where we stopped.
        return found, encode_cursor(query.name, key_of(start, query.key_attributes))

    def all(self, query: KeyQuery) -> list[Item]:
        """Every matching item (for small partitions: history, pools, workers)."""
        params = query.request(self._table_name)
        items: list[Item] = []
        while True:
            with aws_errors(f"query {query.name}"):
                response = self._client.query(**params)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def count(self, query: KeyQuery) -> int:
        params = {**query.request(self._table_name), "Select": "COUNT"}
        total = 0
        while True:
            with aws_errors(f"count {query.name}"):
                response = self._client.query(**params)
            total += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return total
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_get(self, keys: list[Item], operation: str) -> list[Item]:
        """The items of `keys` that exist, in the order of `keys` (strongly consistent)."""
        by_key: dict[tuple[str, str], Item] = {}
        for start in range(0, len(keys), MAX_BATCH_GET_KEYS):
            pending: dict[str, Any] = {
                self._table_name: {"Keys": keys[start:start + MAX_BATCH_GET_KEYS],
                                   "ConsistentRead": True}
            }
            for attempt in range(MAX_UNPROCESSED_RETRIES + 1):
                with aws_errors(operation):
                    response = self._client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table_name, []):
                    by_key[_key_tuple(item)] = item
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(UNPROCESSED_RETRY_BASE_SECONDS * 2**attempt)
            if pending:
                raise Throttled(f"{operation}: DynamoDB left keys unprocessed")
        return [by_key[_key_tuple(k)] for k in keys if _key_tuple(k) in by_key]


def _key_tuple(item: Item) -> tuple[str, str]:
    return item[TABLE_PARTITION_KEY]["S"], item[TABLE_SORT_KEY]["S"]

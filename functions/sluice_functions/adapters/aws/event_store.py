"""`EventStore` on the stack's DynamoDB table: events kept for a retention (TTL), readable by
time range.

| item  | pk                    | sk                          | TTL                        |
|-------|-----------------------|-----------------------------|----------------------------|
| event | `EVENTS#<yyyy-mm-dd>` | `<occurred ISO µs UTC>#<id>` | occurred + event retention |

One partition per UTC day: listing a time range is one Query per day (newest or oldest first),
never a scan; a day's events are few enough (runs x states) for one partition. The resource id
and related ids are a string set (`rids`) filtered on; names are filtered by prefix. A write is
one PutItem per event (recording is best effort and after the run's own transaction, see
`service.event_log`); the same id puts the same item again, so appends are idempotent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sluice.exceptions import BadRequest
from sluice.models import Page, SluiceEvent, utcnow

from ...config import TABLE_PARTITION_KEY, TABLE_SORT_KEY, TTL_ATTRIBUTE
from .dynamo_items import stamped
from .errors import aws_errors

PARTITION_PREFIX = "EVENTS#"
#: Query requests one page makes at most before answering with what it found and a cursor.
MAX_QUERIES_PER_PAGE = 16


def _sort_key(event: SluiceEvent) -> str:
    occurred = event.occurred.astimezone(timezone.utc)
    return f"{occurred.strftime('%Y-%m-%dT%H:%M:%S.%f')}#{event.id}"


def _sort_bound(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


class DynamoEventStore:
    """`EventStore` on the single table (items partitioned by day, expiring by TTL)."""

    def __init__(self, client: Any, table_name: str, *, retention_days: int) -> None:
        self._client = client
        self._table = table_name
        self.retention_days = retention_days

    def append(self, events: Sequence[SluiceEvent]) -> None:
        for event in events:
            occurred = event.occurred.astimezone(timezone.utc)
            expires = occurred + timedelta(days=self.retention_days)
            item: dict[str, Any] = {
                TABLE_PARTITION_KEY: {"S": PARTITION_PREFIX + occurred.date().isoformat()},
                TABLE_SORT_KEY: {"S": _sort_key(event)},
                "name": {"S": event.name},
                "rids": {"SS": sorted({r.id for r in (event.resource, *event.related)})},
                "doc": {"S": event.model_dump_json()},
                TTL_ATTRIBUTE: {"N": str(int(expires.timestamp()))},
            }
            with aws_errors("put event"):
                self._client.put_item(TableName=self._table, Item=stamped(item))

    def list_events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        names: Sequence[str] | None = None,
        resource_id: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[SluiceEvent]:
        ascending = since is not None
        now = utcnow()
        first = (since or now - timedelta(days=self.retention_days)).astimezone(timezone.utc)
        last = (until or now).astimezone(timezone.utc)
        span = (last.date() - first.date()).days + 1
        days = [first.date() + timedelta(days=i) for i in range(max(span, 0))]
        if not ascending:
            days.reverse()
        position = _decode(cursor) if cursor else None
        if position is not None:
            days = [d for d in days if (d >= position[0] if ascending else d <= position[0])]
        items: list[SluiceEvent] = []
        queries = 0
        for day in days:
            start_key = position[1] if position is not None and day == position[0] else None
            while queries < MAX_QUERIES_PER_PAGE:
                queries += 1
                response = self._query(day, first, last, names, resource_id, ascending,
                                       limit - len(items), start_key)
                items.extend(SluiceEvent.model_validate_json(i["doc"]["S"])
                             for i in response.get("Items", []))
                start_key = response.get("LastEvaluatedKey")
                if len(items) >= limit and start_key is not None:
                    return Page[SluiceEvent](items=items, next_cursor=_encode(day, start_key))
                if start_key is None:
                    break
            if (queries >= MAX_QUERIES_PER_PAGE or len(items) >= limit) and (
                    start_key is not None or day != days[-1]):
                next_day = day if start_key is not None else day + timedelta(
                    days=1 if ascending else -1)
                return Page[SluiceEvent](items=items, next_cursor=_encode(next_day, start_key))
            position = None
        return Page[SluiceEvent](items=items, next_cursor=None)

    def _query(self, day: date, first: datetime, last: datetime, names: Sequence[str] | None,
               resource_id: str | None, ascending: bool, limit: int,
               start_key: dict[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":pk": {"S": PARTITION_PREFIX + day.isoformat()},
            ":lo": {"S": _sort_bound(first)},
            ":hi": {"S": _sort_bound(last)},
        }
        filters: list[str] = []
        if names:
            filters.append("(" + " OR ".join(f"begins_with(#name, :n{i})"
                                             for i in range(len(names))) + ")")
            values.update({f":n{i}": {"S": prefix} for i, prefix in enumerate(names)})
        if resource_id is not None:
            filters.append("contains(rids, :rid)")
            values[":rid"] = {"S": resource_id}
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#pk": TABLE_PARTITION_KEY, "#sk": TABLE_SORT_KEY,
                                         **({"#name": "name"} if names else {})},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": ascending,
            "Limit": max(limit, 1),
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        if start_key:
            request["ExclusiveStartKey"] = start_key
        with aws_errors("query events"):
            return self._client.query(**request)

    def purge_before(self, cutoff: datetime) -> int:
        return 0  # DynamoDB's TTL removes expired events


def _encode(day: date, start_key: dict[str, Any] | None) -> str:
    plain = {k: v["S"] for k, v in (start_key or {}).items()}
    raw = json.dumps({"q": "events", "d": day.isoformat(), "k": plain})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode(cursor: str) -> tuple[date, dict[str, Any] | None]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if raw.get("q") != "events":
            raise ValueError("not an events cursor")
        key = {k: {"S": v} for k, v in raw["k"].items()} or None
        return date.fromisoformat(raw["d"]), key
    except (ValueError, KeyError, TypeError) as error:
        raise BadRequest(f"cursor {cursor[:40]!r} is not one of GET /events; pass the "
                         "next_cursor of the previous page, or none to start over") from error

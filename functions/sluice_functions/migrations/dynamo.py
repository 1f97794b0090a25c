"""Migrations on the DynamoDB table: the META item, a Scan page by page, conditional writes.

META item (`config.META_PARTITION` / `META_SORT_KEY`): `schema_version` (the version the data
is at), `oldest_code`, and while a step runs `migrating_to`, `checkpoint` (the Scan's
LastEvaluatedKey as JSON), `scanned`, `changed`, `updated_at`. A table without it holds data
of version 1 (written before versions existed), or is new and empty (then it is at
`SCHEMA_VERSION`: nothing to migrate).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sluice.exceptions import Conflict

from ..adapters.aws.errors import aws_errors
from ..config import (
    META_PARTITION,
    META_SORT_KEY,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ATTRIBUTE,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
)
from .runner import PageResult
from .status import UNVERSIONED, SchemaStatus
from .steps import MIGRATIONS, Item, ItemChange, Migration

META_KEY: Item = {TABLE_PARTITION_KEY: {"S": META_PARTITION}, TABLE_SORT_KEY: {"S": META_SORT_KEY}}
#: A conditional item write that lost to a concurrent writer is re-read and re-applied at most
#: this often; after that the item is left for the next run (the checkpoint does not skip it).
MAX_ITEM_ATTEMPTS = 3


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _number(item: Item, name: str, default: int | None = None) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value is not None else default


class DynamoMigrationBackend:
    """`MigrationBackend` on the single table, through an injected boto3 DynamoDB client."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # ---- status ------------------------------------------------------------------------------

    def read_status(self) -> SchemaStatus:
        item = self._meta()
        if item is None:
            return SchemaStatus(version=SCHEMA_VERSION if self._is_empty() else UNVERSIONED)
        return self._status_of(item)

    def guard_status(self) -> SchemaStatus:
        """The status as far as `SchemaGuard` needs it: one GetItem. Without a META item the
        data is version 1, or the table is new: then it is stamped at this code's version
        (one conditional write, once), so a new stack writes today's layout from its first
        run on without a migration."""
        item = self._meta()
        if item is not None:
            return self._status_of(item)
        if not self._is_empty():
            return SchemaStatus(version=UNVERSIONED)
        oldest = max((s.to_version for s in MIGRATIONS if s.breaks_older_code),
                     default=UNVERSIONED)
        try:
            self._update_meta("SET schema_version = :v, oldest_code = :oldest, updated_at = :now",
                              {":v": {"N": str(SCHEMA_VERSION)}, ":oldest": {"N": str(oldest)},
                               ":now": {"S": _now()}},
                              "attribute_not_exists(schema_version)", "stamp a new table")
        except Conflict:
            pass  # another function stamped it first
        item = self._meta()
        return SchemaStatus(version=UNVERSIONED) if item is None else self._status_of(item)

    def _meta(self) -> Item | None:
        with aws_errors("get schema status"):
            return self._client.get_item(TableName=self._table, Key=META_KEY,
                                         ConsistentRead=True).get("Item")

    @staticmethod
    def _status_of(item: Item) -> SchemaStatus:
        return SchemaStatus(
            version=_number(item, "schema_version", UNVERSIONED) or UNVERSIONED,
            oldest_code=_number(item, "oldest_code", UNVERSIONED) or UNVERSIONED,
            migrating_to=_number(item, "migrating_to"),
            checkpoint=item.get("checkpoint", {}).get("S"),
            scanned=_number(item, "scanned", 0) or 0,
            changed=_number(item, "changed", 0) or 0,
            updated_at=item.get("updated_at", {}).get("S"),
        )

    def _is_empty(self) -> bool:
        with aws_errors("scan for any item"):
            return not self._client.scan(TableName=self._table, Limit=1,
                                         ProjectionExpression="#pk",
                                         ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY}
                                         ).get("Items")

    def _update_meta(self, expression: str, values: dict[str, Any], condition: str,
                     operation: str) -> Item:
        with aws_errors(operation):
            return self._client.update_item(
                TableName=self._table, Key=META_KEY, UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW")["Attributes"]

    def begin(self, step: Migration, status: SchemaStatus) -> SchemaStatus:
        from_v, to_v = {"N": str(step.from_version)}, {"N": str(step.to_version)}
        if status.migrating_to == step.to_version:
            return status  # resuming: the checkpoint and counts stand
        try:
            self._update_meta(
                "SET schema_version = :from, oldest_code = if_not_exists(oldest_code, :one),"
                " migrating_to = :to, scanned = :zero, changed = :zero, updated_at = :now"
                " REMOVE checkpoint",
                {":from": from_v, ":to": to_v, ":one": {"N": str(UNVERSIONED)},
                 ":zero": {"N": "0"}, ":now": {"S": _now()}},
                "(attribute_not_exists(schema_version) OR schema_version = :from) AND "
                "(attribute_not_exists(migrating_to) OR migrating_to = :to)",
                "begin migration")
        except Conflict as error:
            raise Conflict(f"the table is no longer at schema {step.from_version} (another "
                           "migration ran meanwhile): run `sluice admin status`") from error
        return self.read_status()

    def finish(self, step: Migration) -> None:
        oldest = step.to_version if step.breaks_older_code else None
        expression = ("SET schema_version = :to, updated_at = :now"
                      + (", oldest_code = :oldest" if oldest else "")
                      + " REMOVE migrating_to, checkpoint")
        values = {":to": {"N": str(step.to_version)}, ":now": {"S": _now()}}
        if oldest:
            values[":oldest"] = {"N": str(oldest)}
        self._update_meta(expression, values, "migrating_to = :to", "finish migration")

    # ---- pages -------------------------------------------------------------------------------

    def migrate_page(self, step: Migration, checkpoint: str | None, page_size: int, *,
                     dry_run: bool) -> PageResult:
        params: dict[str, Any] = {"TableName": self._table, "Limit": page_size,
                                  "ConsistentRead": True}
        if checkpoint is not None:
            params["ExclusiveStartKey"] = json.loads(checkpoint)
        with aws_errors("scan for migration"):
            response = self._client.scan(**params)
        # The META item is the migration's own bookkeeping, not data.
        items = [i for i in response.get("Items", [])
                 if i[TABLE_PARTITION_KEY]["S"] != META_PARTITION]
        changed = 0
        for item in items:
            if dry_run:
                changed += step.dynamo_item(item) is not None
            else:
                changed += self._apply(step, item)
        last = response.get("LastEvaluatedKey")
        next_checkpoint = json.dumps(last, sort_keys=True) if last else None
        if not dry_run:
            self._save_checkpoint(step, next_checkpoint, len(items), changed)
        return PageResult(scanned=len(items), changed=changed, checkpoint=next_checkpoint)

    def _save_checkpoint(self, step: Migration, checkpoint: str | None, scanned: int,
                         changed: int) -> None:
        values: dict[str, Any] = {":to": {"N": str(step.to_version)}, ":now": {"S": _now()},
                                  ":scanned": {"N": str(scanned)},
                                  ":changed": {"N": str(changed)}}
        if checkpoint is None:
            expression = ("SET updated_at = :now ADD scanned :scanned, changed :changed"
                          " REMOVE checkpoint")
        else:
            expression = ("SET updated_at = :now, checkpoint = :checkpoint"
                          " ADD scanned :scanned, changed :changed")
            values[":checkpoint"] = {"S": checkpoint}
        self._update_meta(expression, values, "migrating_to = :to", "save migration checkpoint")

    def _apply(self, step: Migration, item: Item) -> bool:
        """Write `step`'s change to `item` only while the item is still below the step's version
        and (when it has a document) unchanged since read; re-read after losing a race."""
        for _ in range(MAX_ITEM_ATTEMPTS):
            change = step.dynamo_item(item)
            if change is None:
                return False
            try:
                with aws_errors("migrate item"):
                    self._client.update_item(**self._conditional_update(step, item, change))
                return True
            except Conflict:
                key = {TABLE_PARTITION_KEY: item[TABLE_PARTITION_KEY],
                       TABLE_SORT_KEY: item[TABLE_SORT_KEY]}
                with aws_errors("re-read item for migration"):
                    fresh = self._client.get_item(TableName=self._table, Key=key,
                                                  ConsistentRead=True).get("Item")
                if fresh is None:
                    return False  # deleted meanwhile (TTL, a delete): nothing to migrate
                item = fresh
        return False

    def _conditional_update(self, step: Migration, item: Item,
                            change: ItemChange) -> dict[str, Any]:
        names = {"#pk": TABLE_PARTITION_KEY, "#sv": SCHEMA_VERSION_ATTRIBUTE}
        values: dict[str, Any] = {":to": {"N": str(step.to_version)}}
        assignments = []
        for i, (name, value) in enumerate(change.set.items()):
            names[f"#s{i}"] = name
            values[f":s{i}"] = value
            assignments.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(assignments)
        if change.remove:
            removed = {f"#r{i}": name for i, name in enumerate(change.remove)}
            names.update(removed)
            expression += " REMOVE " + ", ".join(removed)
        condition = "attribute_exists(#pk) AND (attribute_not_exists(#sv) OR #sv < :to)"
        if "data" in item:  # a record: only the version of it that was read is migrated
            names["#data"] = "data"
            values[":data"] = item["data"]
            condition += " AND #data = :data"
        key = {TABLE_PARTITION_KEY: item[TABLE_PARTITION_KEY], TABLE_SORT_KEY: item[TABLE_SORT_KEY]}
        return {"TableName": self._table, "Key": key, "UpdateExpression": expression,
                "ConditionExpression": condition, "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values}

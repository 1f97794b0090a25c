"""`AutomationStore` on DynamoDB: items of the control plane's single table.

| item            | pk                          | sk                 | TTL |
|-----------------|-----------------------------|--------------------|-----|
| automation      | `AUTOMATIONS`               | `<automation id>`  | no  |
| action receipt  | `AUTOMATION#<automation id>`| `RECEIPT#<key>`    | yes |

Automations are few (one partition, one Query). A receipt is a conditional PutItem
(`attribute_not_exists`): the one writer that creates it acts. Receipts expire after
`RECEIPT_TTL_DAYS`, longer than any trigger window, so an old key can never fire again.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from sluice.exceptions import NotFound
from sluice.models import Automation

from ...config import TABLE_PARTITION_KEY as PK
from ...config import TABLE_SORT_KEY as SK
from ...config import TTL_ATTRIBUTE
from .dynamo_items import stamped
from .errors import aws_errors, error_code

AUTOMATIONS_PARTITION = "AUTOMATIONS"
RECEIPT_PREFIX = "RECEIPT#"
#: Receipts outlive the longest window (7 days) with margin.
RECEIPT_TTL_DAYS = 30


class DynamoAutomationStore:
    """Automations and receipts in the run store's table, through an injected client."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def put_automation(self, automation: Automation) -> Automation:
        with aws_errors("PutItem automation"):
            self._client.put_item(TableName=self._table, Item=stamped({
                PK: {"S": AUTOMATIONS_PARTITION}, SK: {"S": automation.id},
                "data": {"S": automation.model_dump_json()}}))
        return automation.model_copy(deep=True)

    def get_automation(self, automation_id: str) -> Automation:
        with aws_errors("GetItem automation"):
            answer = self._client.get_item(TableName=self._table, ConsistentRead=True, Key={
                PK: {"S": AUTOMATIONS_PARTITION}, SK: {"S": automation_id}})
        item = answer.get("Item")
        if item is None:
            raise _not_found(automation_id)
        return Automation.model_validate_json(item["data"]["S"])

    def list_automations(self) -> list[Automation]:
        found: list[Automation] = []
        request: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True,
            "KeyConditionExpression": "#pk = :pk", "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": AUTOMATIONS_PARTITION}}}
        while True:
            with aws_errors("Query automations"):
                answer = self._client.query(**request)
            found.extend(Automation.model_validate_json(i["data"]["S"])
                         for i in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                break
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return sorted(found, key=lambda a: (a.name, a.id))

    def delete_automation(self, automation_id: str) -> None:
        try:
            with aws_errors("DeleteItem automation"):
                self._client.delete_item(
                    TableName=self._table, ConditionExpression="attribute_exists(#pk)",
                    ExpressionAttributeNames={"#pk": PK},
                    Key={PK: {"S": AUTOMATIONS_PARTITION}, SK: {"S": automation_id}})
        except Exception as exc:
            if _conditional_failed(exc):
                raise _not_found(automation_id) from None
            raise
        # Receipts expire with their TTL; nothing else refers to them.

    def claim_receipt(self, automation_id: str, key: str, *, at: datetime) -> bool:
        item = {PK: {"S": f"AUTOMATION#{automation_id}"}, SK: {"S": RECEIPT_PREFIX + key},
                "claimed": {"S": at.astimezone(timezone.utc).isoformat()},
                TTL_ATTRIBUTE: {"N": str(int(time.time()) + RECEIPT_TTL_DAYS * 86_400)}}
        try:
            with aws_errors("PutItem receipt"):
                self._client.put_item(TableName=self._table, Item=stamped(item),
                                      ConditionExpression="attribute_not_exists(#pk)",
                                      ExpressionAttributeNames={"#pk": PK})
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def latest_receipt(self, automation_id: str, key_prefix: str) -> datetime | None:
        request: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": {"S": f"AUTOMATION#{automation_id}"},
                                          ":prefix": {"S": RECEIPT_PREFIX + key_prefix}},
            "ProjectionExpression": "claimed"}
        latest: datetime | None = None
        while True:
            with aws_errors("Query receipts"):
                answer = self._client.query(**request)
            for item in answer.get("Items", []):
                claimed = datetime.fromisoformat(item["claimed"]["S"])
                latest = claimed if latest is None else max(latest, claimed)
            if "LastEvaluatedKey" not in answer:
                return latest
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _conditional_failed(exc: BaseException) -> bool:
    cause = exc.__cause__ if not isinstance(exc, ClientError) else exc
    return isinstance(cause, ClientError) and error_code(cause) == "ConditionalCheckFailedException"


def _not_found(automation_id: str) -> NotFound:
    return NotFound(f"no automation {automation_id!r}; list them with `sluice automation ls`",
                    details={"automation": automation_id})

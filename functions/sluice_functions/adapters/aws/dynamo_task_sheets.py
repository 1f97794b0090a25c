"""Task runs in the run's partition: one item per record, or packed (issue 20).

A task run reported more than once (Running, later Completed) is one `TASK#<id>` item, written
only by a higher `version` (a conditional PutItem: 1 WRU for most records). A task run reported
once, already final (`EventsBatch.finished_task_runs`: a short task), needs no such condition:
no later record of it follows. Those go packed, *sheets* of up to `TASK_SHEET_MAX_BYTES` of
compact JSON (`TASK#<first id>~<digest>`, which sorts among the single items): ten short tasks
cost one item of about 3 KB (3-4 WRU) instead of ten. The digest is of the sheet's content,
so a batch sent again writes the same item again.

From schema 4 (`config.COMPRESSED_ITEMS_SCHEMA`) a sheet holds its record list zlib-compressed
in the Binary attribute `z` instead of the `data` string: ten short tasks are then one item of
about 0.5 KB (1 WRU). Readers take both. The key (first id, digest of the uncompressed JSON) is
the same in both layouts, so a batch resent across the migration overwrites its sheet.

A listing reads both kinds in sort-key order and pages by record: its cursor is the position
(sort key, index in the item) of the first record not returned. A record that reached the
store twice (a batch resent after a lost answer may pack it differently) is shown once per page,
its highest version.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Sequence
from typing import Any

from sluice.exceptions import BadRequest
from sluice.models import Page, TaskRun

from ...config import TABLE_PARTITION_KEY, TABLE_SORT_KEY, TTL_ATTRIBUTE
from ..pages import check_page_limit
from ..records import readable
from . import dynamo_items as items
from .dynamo_table import SingleTable

#: A sheet's JSON stays under this many bytes: a page of a listing stays close to its limit,
#: and the item far below DynamoDB's 400 KB item limit
#: (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
TASK_SHEET_MAX_BYTES = 16 * 1024
#: The same bound on a compressed sheet's JSON *before* compression: what a listing decodes per
#: item. Kept at 16 KB: compressed (~8x on task runs) such a sheet is ~2 KB, 3 WRU. A 64 KB cap
#: would save ~25% of the write units of large batches (less rounding up to whole KBs), but a
#: listing's Query reads up to `limit + 1` items whatever their records, so each page would read
#: (and bill) four times the bytes: large flows list more often than they are written.
COMPRESSED_SHEET_MAX_JSON_BYTES = TASK_SHEET_MAX_BYTES
#: The Binary attribute of a compressed sheet (schema 4): its record list, zlib-compressed.
COMPRESSED_RECORDS = "z"
#: Between the first task-run id and the digest: sorts after every id character (hex, '-').
SHEET_MARK = "~"
#: The first sort key after every task item ("TASK$" follows "TASK#...").
_AFTER_TASKS = "TASK$"
_QUERY = "task-runs"


def record_text(task_run: TaskRun) -> dict[str, Any]:
    """A record as a sheet keeps it: defaults and the flow run id (the sheet's) left out."""
    return task_run.model_dump(mode="json", exclude_defaults=True, exclude={"flow_run_id"})


def sheet_items(flow_run_id: str, task_runs: Sequence[TaskRun], expires_at: int, *,
                compressed: bool = False) -> list[items.Item]:
    """The sheets holding `task_runs` (all of one flow run), in id order; `compressed`: the
    layout of schema 4 (`COMPRESSED_RECORDS`), else the `data` string."""
    cap = COMPRESSED_SHEET_MAX_JSON_BYTES if compressed else TASK_SHEET_MAX_BYTES
    sheets: list[list[str]] = [[]]
    size = 0
    for task_run in sorted(task_runs, key=lambda t: t.id):
        text = json.dumps(record_text(task_run), separators=(",", ":"))
        if sheets[-1] and size + len(text) > cap:
            sheets.append([])
            size = 0
        sheets[-1].append(text)
        size += len(text) + 1
    found = []
    for texts in sheets:
        if not texts:
            continue
        data = "[" + ",".join(texts) + "]"
        digest = hashlib.sha256(data.encode()).hexdigest()[:16]
        first_id = json.loads(texts[0])["id"]
        records = (_compressed(data) if compressed
                   else {items.DATA: items.s(data)})
        found.append({**items.key(items.run_partition(flow_run_id),
                                  f"{items.TASK_PREFIX}{first_id}{SHEET_MARK}{digest}"),
                      **records, TTL_ATTRIBUTE: items.n(expires_at)})
    return found


def _compressed(data: str) -> items.Item:
    return {COMPRESSED_RECORDS: {"B": zlib.compress(data.encode(), items.COMPRESSION_LEVEL)}}


def put_sheets(table: SingleTable, task_runs: Sequence[TaskRun], expires_at: int, *,
               compressed: bool = False) -> int:
    """Write finished task runs packed, grouped by flow run; returns how many records.
    `compressed`: in the layout of schema 4 (the store passes whether the data is there)."""
    by_run: dict[str, list[TaskRun]] = {}
    for task_run in task_runs:
        by_run.setdefault(task_run.flow_run_id, []).append(task_run)
    for flow_run_id, runs in by_run.items():
        for item in sheet_items(flow_run_id, runs, expires_at, compressed=compressed):
            table.put(table.put_request(item), "put finished task runs")
    return len(task_runs)


def records_of(item: items.Item) -> list[TaskRun]:
    """The task runs an item holds: one, or a sheet's, in id order."""
    sort_key = item[TABLE_SORT_KEY]["S"]
    if SHEET_MARK not in sort_key:
        return [TaskRun.model_validate_json(items.data_of(item))]
    flow_run_id = item[TABLE_PARTITION_KEY]["S"][len(items.run_partition("")):]
    return [TaskRun.model_validate({**record, "flow_run_id": flow_run_id})
            for record in json.loads(sheet_text(item))]


def sheet_text(item: items.Item) -> str:
    """A sheet's record list as JSON, from either layout (`z` of schema 4, or `data`)."""
    if COMPRESSED_RECORDS in item:
        return items.decoded_document(item[COMPRESSED_RECORDS], ref=items.item_ref(item))
    return items.data_of(item)


def list_page(table: SingleTable, flow_run_id: str, *, limit: int,
              cursor: str | None) -> Page[TaskRun]:
    """Up to `limit` task runs of the flow run from `cursor` on, in sort-key order."""
    check_page_limit(limit)
    start_key, skip = _decode(cursor) if cursor else (items.TASK_PREFIX, 0)
    params: dict[str, Any] = {
        "TableName": table.table_name, "ConsistentRead": True,
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :from AND :upto",
        "ExpressionAttributeNames": {"#pk": TABLE_PARTITION_KEY, "#sk": TABLE_SORT_KEY},
        "ExpressionAttributeValues": {":pk": items.s(items.run_partition(flow_run_id)),
                                      ":from": items.s(start_key),
                                      ":upto": items.s(_AFTER_TASKS)},
    }
    found: list[tuple[str, int, TaskRun]] = []
    while len(found) <= limit:
        params["Limit"] = limit + 1
        response = table.query_page(params, "query task runs")
        for item in response.get("Items", []):
            if len(found) > limit:  # decode no sheet past the page: at most one sheet more
                break
            for sort_key, records in readable(
                    [item], lambda i: (i[TABLE_SORT_KEY]["S"], records_of(i)),
                    kind="task run", ref=lambda i: i[TABLE_SORT_KEY]["S"]):
                first = skip if sort_key == start_key else 0
                found += [(sort_key, index, records[index])
                          for index in range(first, len(records))]
        if "LastEvaluatedKey" not in response:
            break
        params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    page = _highest_versions([record for _, _, record in found[:limit]])
    if len(found) <= limit:
        return Page[TaskRun](items=page, next_cursor=None)
    sort_key, index, _ = found[limit]
    return Page[TaskRun](items=page, next_cursor=_encode(sort_key, index))


def _highest_versions(records: list[TaskRun]) -> list[TaskRun]:
    best: dict[str, TaskRun] = {}
    for record in records:
        kept = best.get(record.id)
        if kept is None or record.version > kept.version:
            best[record.id] = record
    seen: set[str] = set()
    ordered = []
    for record in records:
        if record.id not in seen:
            seen.add(record.id)
            ordered.append(best[record.id])
    return ordered


def _encode(sort_key: str, index: int) -> str:
    raw = json.dumps({"q": _QUERY, "at": sort_key, "i": index}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, int]:
    """(sort key to start at, records of that item to skip). A cursor of the previous release
    (the key of the last item returned) resumes after that item."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if decoded["q"] != _QUERY:
            raise ValueError
        if "k" in decoded:  # previous release: {"q", "k": {pk, sk}}, exclusive
            at, index = str(decoded["k"][TABLE_SORT_KEY]), 1 << 30
        else:
            at, index = decoded["at"], decoded["i"]
        if (not isinstance(at, str) or not at.startswith(items.TASK_PREFIX)
                or not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise ValueError
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("invalid cursor: pass the next_cursor of the same listing",
                         details={"field": "cursor"}) from None
    return at, index

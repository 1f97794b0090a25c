"""The operator's look-ups and deletions of the DynamoDB run store: find a run by what a user
typed (`find_flow_runs`), delete a finished run (`delete_flow_run`) and a pool's record
(`delete_pool`). A mixin of `DynamoRunStore`, kept apart so that module stays readable.

What a look-up costs (on-demand prices, eventually consistent reads of 8 KB per unit):

* id prefix or suffix: a Query of the "runs by time" index, newest first, with
  `contains(run_order, ...)` as its filter (`run_order` is "<time>#<id>"). Index entries are
  ~150 bytes, so each 1 MB page (128 read units) covers ~7,000 runs; at most
  `MAX_ID_SEARCH_PAGES` pages are read, so a prefix or suffix finds runs among the newest
  ~28,000.
* name: names are only inside the run's JSON, which no index holds, so a Scan of the table with
  `sk = "RUN" AND contains(data, '"name":"<name>"')`, at most `MAX_NAME_SCAN_PAGES` pages of
  1 MB (a Scan reads every item of the page - history, task runs - and bills them all, filtered
  or not). On a table larger than that a name may not be found; the id always is. The scan
  stops at `limit` matches. A compressed document (schema 4) cannot be matched by the filter:
  those run items are returned whole and matched here after decoding (the same read units,
  more bytes sent).

Both need read rights on the table (`dynamodb:Query` on its indexes, `dynamodb:Scan` on it).
"""

from __future__ import annotations

import json
from typing import Any

from sluice.exceptions import Conflict, NotFound
from sluice.models import FlowRun

from ...config import (
    RUN_ENTITY,
    RUN_ENTITY_FLOW_RUN,
    RUN_ORDER,
    RUNS_BY_TIME,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
)
from ...ports import MIN_ID_PREFIX_CHARS, MIN_ID_SUFFIX_CHARS
from ..records import UnreadableRecord, readable
from . import dynamo_items as items
from . import dynamo_run_item as run_item
from .dynamo_table import EXISTS, KeyQuery, SingleTable

#: Pages (1 MB each at most) of the runs-by-time index one id look-up reads.
MAX_ID_SEARCH_PAGES = 4
#: Pages (1 MB each at most) of the table one name look-up scans.
MAX_NAME_SCAN_PAGES = 8
#: TransactWriteItems takes at most 100 actions:
#: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
MAX_TRANSACTION_ITEMS = 100


class DynamoRunMaintenance:
    """`RunStore.find_flow_runs`, `delete_flow_run` and `delete_pool` on the single table."""

    _table: SingleTable

    # ---- look-ups ----------------------------------------------------------------------------

    def find_flow_runs(self, ref: str, *, limit: int) -> list[FlowRun]:
        if not ref:
            return []
        id_ref = ref.lower()
        ids: list[str] = []
        if len(id_ref) >= MIN_ID_PREFIX_CHARS:
            ids = self._ids_matching(id_ref, limit)
        runs = {run.id: run for run in self._runs(ids)}
        for run in self._runs_named(ref, limit):
            runs.setdefault(run.id, run)
        newest_first = sorted(runs.values(), key=lambda run: items.run_order(run), reverse=True)
        return newest_first[:limit]

    def _ids_matching(self, id_ref: str, limit: int) -> list[str]:
        """Ids starting with `id_ref`, or ending with it when it is long enough for a suffix."""
        fragments = {":prefix": items.s(f"#{id_ref}")}
        condition = "contains(#order, :prefix)"
        if len(id_ref) >= MIN_ID_SUFFIX_CHARS:
            fragments[":suffix"] = items.s(id_ref)
            condition += " OR contains(#order, :suffix)"
        query = KeyQuery(name="find-runs", index=RUNS_BY_TIME, forward=False,
                         partition=(RUN_ENTITY, RUN_ENTITY_FLOW_RUN),
                         filter_expression=condition, names={"#order": RUN_ORDER},
                         values=fragments)
        params = query.request(self._table.table_name)
        ids: list[str] = []
        for _ in range(MAX_ID_SEARCH_PAGES):
            response = self._table.query_page(params, "find flow runs by id")
            for entry in response.get("Items", []):
                run_id = entry[RUN_ORDER]["S"].split("#", 1)[1]
                if run_id.startswith(id_ref) or (
                        len(id_ref) >= MIN_ID_SUFFIX_CHARS and run_id.endswith(id_ref)):
                    ids.append(run_id)
            if len(ids) >= limit or "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return ids[:limit]

    def _runs_named(self, name: str, limit: int) -> list[FlowRun]:
        # The name as the run's JSON holds it (pydantic writes compact JSON), so `contains`
        # matches the "name" field and not "flow_name" (its quote comes before `name`).
        fragment = '"name":' + json.dumps(name, ensure_ascii=False)
        params: dict[str, Any] = {
            "TableName": self._table.table_name,
            "FilterExpression": ("#sk = :run AND (contains(#data, :name)"
                                 " OR attribute_type(#data, :binary))"),
            "ExpressionAttributeNames": {"#sk": TABLE_SORT_KEY, "#data": items.DATA},
            "ExpressionAttributeValues": {":run": items.s(items.RUN_SORT_KEY),
                                          ":name": items.s(fragment), ":binary": items.s("B")},
        }
        found: list[FlowRun] = []
        for _ in range(MAX_NAME_SCAN_PAGES):
            response = self._table.scan_page(params, "find flow runs by name")
            mentioned = [i for i in response.get("Items", []) if _mentions(i, fragment)]
            runs = readable(mentioned, run_item.run_of,
                            kind="flow run", ref=lambda i: i[TABLE_PARTITION_KEY]["S"])
            found += [run for run in runs if run.name == name]  # not a parameter's "name"
            if len(found) >= limit or "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def _runs(self, ids: list[str]) -> list[FlowRun]:
        if not ids:
            return []
        found = self._table.batch_get([items.run_key(run_id) for run_id in ids], "get flow runs")
        return readable(found, run_item.run_of,
                        kind="flow run", ref=lambda i: i[TABLE_PARTITION_KEY]["S"])

    # ---- deletions ---------------------------------------------------------------------------

    def delete_flow_run(self, run: FlowRun) -> None:
        """The run item goes in one transaction with its idempotency guard and the first
        items of its partition (history, transition ids, task runs): a run with up to ~98 of
        those is deleted atomically. The rest go in further transactions of 100; items a
        failure leaves behind belong to no run any more and expire with the table's TTL."""
        partition = KeyQuery(name="run-partition",
                             partition=(TABLE_PARTITION_KEY, items.run_partition(run.id)))
        keys = [items.key_of(item, (TABLE_PARTITION_KEY, TABLE_SORT_KEY))
                for item in self._table.all(partition)
                if item[TABLE_SORT_KEY]["S"] != items.RUN_SORT_KEY]
        condition = "attribute_exists(#pk) AND #version = :expected"
        first: list[tuple[str, dict[str, Any]]] = [("Delete", self._table.delete_request(
            items.run_key(run.id), condition, {"#pk": TABLE_PARTITION_KEY,
                                               "#version": items.VERSION},
            {":expected": items.n(run.version)}))]
        if run.idempotency_key is not None:
            first.append(("Delete", self._table.delete_request(
                items.idempotency_key(run.idempotency_key), None)))
        room = MAX_TRANSACTION_ITEMS - len(first)
        first += [("Delete", self._table.delete_request(key, None)) for key in keys[:room]]
        try:
            self._table.transact("delete flow run", *first)
        except Conflict as error:
            if self._table.get(items.run_key(run.id), "get flow run") is None:
                raise NotFound(f"flow run {run.id} not found",
                               details={"flow_run_id": run.id}) from error
            raise Conflict(f"flow run {run.id} changed while it was being deleted; try again",
                           details={"flow_run_id": run.id}) from error
        self._delete_all(keys[room:], "delete flow run records")

    def delete_pool(self, name: str) -> None:
        try:
            self._table.transact("delete pool", ("Delete", self._table.delete_request(
                items.pool_key(name), EXISTS)))
        except Conflict as error:
            raise NotFound(f"pool {name} not found", details={"pool": name}) from error
        workers = KeyQuery(name="workers",
                           partition=(TABLE_PARTITION_KEY, items.workers_partition(name)))
        self._delete_all([items.key_of(item, (TABLE_PARTITION_KEY, TABLE_SORT_KEY))
                          for item in self._table.all(workers)], "delete pool workers")

    def _delete_all(self, keys: list[items.Item], operation: str) -> None:
        for start in range(0, len(keys), MAX_TRANSACTION_ITEMS):
            batch = keys[start:start + MAX_TRANSACTION_ITEMS]
            self._table.transact(operation, *[("Delete", self._table.delete_request(key, None))
                                              for key in batch])


def _mentions(item: items.Item, fragment: str) -> bool:
    """Whether a scanned run's document holds `fragment` (the filter's `contains`, for the
    compressed documents it cannot see into); a document that does not decode is kept, so the
    read skips it with a log line naming it."""
    try:
        return fragment in items.data_of(item)
    except UnreadableRecord:
        return True

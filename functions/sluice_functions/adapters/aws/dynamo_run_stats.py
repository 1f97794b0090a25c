"""The console's counts on the DynamoDB run store: runs per time bucket and state type. A mixin of
`DynamoRunStore`, kept apart so that module stays readable.

DynamoDB has no GROUP BY, so the counts come from reading index entries, never runs: one Query
per state type of runs-by-state (the only index holding a run's state type: it is its key)
over the window, with the flow/deployment/pool filters and a ProjectionExpression of the time
only; each entry counts for the state type of its partition. Every run of the window is read
once; with a flow or deployment filter that is every flow's runs, filtered by DynamoDB (the
flow's and deployment's indexes no longer hold the state type, so a state change writes one
index instead of four: issue 20). Index entries are ~150 bytes, so one 1 MB page (128 read units,
eventually consistent) covers ~7,000 runs; at most `MAX_STATS_QUERY_PAGES` pages are read per
state type (~140,000 runs), and a window with more answers the counts read so far with
`truncated`.

Late runs are Scheduled runs whose time has passed and whose state is *named* Late, a name no
index holds: the Scheduled index entries of the window up to now are read (runs due and not yet
started: few on a healthy system), at most `MAX_LATE_CANDIDATES`, and their runs fetched with a
BatchGetItem to read the name.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from sluice.models import StateType

from ...config import RUN_ORDER, TABLE_PARTITION_KEY, TABLE_SORT_KEY
from ...ports import FlowRunCounts, FlowRunFilter
from ..records import readable
from . import dynamo_items as items
from . import dynamo_run_item as run_item
from .dynamo_run_queries import flow_run_count_queries
from .dynamo_table import KeyQuery, SingleTable

#: Query requests (1 MB each at most) one count reads before answering `truncated`.
MAX_STATS_QUERY_PAGES = 20
#: Scheduled runs already due whose names are read to count the Late ones.
MAX_LATE_CANDIDATES = 1000
#: The name the monitor gives a Scheduled run past its time (`monitoring.monitor`).
LATE_STATE_NAME = "Late"


class DynamoRunStats:
    """`RunStore.count_flow_runs_by_bucket` on the store's table."""

    _table: SingleTable

    def count_flow_runs_by_bucket(
        self, flt: FlowRunFilter, *, bucket_seconds: int, now: datetime
    ) -> FlowRunCounts:
        if flt.scheduled_after is None or flt.scheduled_before is None:
            raise ValueError("count_flow_runs_by_bucket needs scheduled_after and scheduled_before")
        every_state = replace(flt, state_types=flt.state_types or frozenset(StateType))
        times_and_types = []
        truncated = False
        for query in flow_run_count_queries(every_state):
            state_type = StateType(query.partition[1])
            query.names["#order"] = RUN_ORDER
            entries, partition_truncated = self._index_entries(
                query, projection="#order", max_pages=MAX_STATS_QUERY_PAGES)
            truncated = truncated or partition_truncated
            times_and_types.extend((_order_time(entry[RUN_ORDER]["S"]), state_type)
                                   for entry in entries)
        counts = FlowRunCounts.tally(times_and_types, origin=items.utc(flt.scheduled_after),
                                     bucket_seconds=bucket_seconds)
        late, late_truncated = self._count_late(flt, now)
        return FlowRunCounts(counts=counts, late=late, truncated=truncated or late_truncated)

    def _count_late(self, flt: FlowRunFilter, now: datetime) -> tuple[int, bool]:
        before = min(items.utc(flt.scheduled_before), items.utc(now))  # type: ignore[arg-type]
        if before <= items.utc(flt.scheduled_after):  # type: ignore[arg-type]
            return 0, False
        late_filter = FlowRunFilter(
            flow_name=flt.flow_name, deployment_id=flt.deployment_id, pool=flt.pool,
            state_types=frozenset({StateType.SCHEDULED}),
            scheduled_after=flt.scheduled_after, scheduled_before=before)
        (query,) = flow_run_count_queries(late_filter)
        query.names.update({"#tpk": TABLE_PARTITION_KEY, "#tsk": TABLE_SORT_KEY})
        entries, truncated = self._index_entries(
            query, projection="#tpk, #tsk", max_pages=MAX_STATS_QUERY_PAGES,
            max_items=MAX_LATE_CANDIDATES)
        keys = [items.key(e[TABLE_PARTITION_KEY]["S"], e[TABLE_SORT_KEY]["S"]) for e in entries]
        runs = readable(self._table.batch_get(keys, "count late flow runs"),
                        run_item.run_of,
                        kind="flow run", ref=lambda i: i[TABLE_PARTITION_KEY]["S"])
        late = sum(1 for run in runs if run.state.type == StateType.SCHEDULED
                   and run.state.name == LATE_STATE_NAME)
        return late, truncated

    def _index_entries(self, query: KeyQuery, *, projection: str, max_pages: int,
                       max_items: int | None = None) -> tuple[list[dict[str, Any]], bool]:
        """The query's entries, projected, at most `max_pages` requests (and `max_items`
        entries); True when more remained."""
        params = {**query.request(self._table.table_name), "ProjectionExpression": projection}
        if max_items is not None:
            params["Limit"] = max_items + 1
        found: list[dict[str, Any]] = []
        for _ in range(max_pages):
            response = self._table.query_page(params, f"count {query.name}")
            found.extend(response.get("Items", []))
            if max_items is not None and len(found) > max_items:
                return found[:max_items], True
            if "LastEvaluatedKey" not in response:
                return found, False
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            if max_items is not None:
                params["Limit"] = max_items + 1 - len(found)
        return found, True


def _order_time(order: str) -> datetime:
    """The time of a `run_order` ("<fixed-width UTC ISO>Z#<run id>")."""
    moment = order.partition("#")[0].rstrip("Z")
    return datetime.fromisoformat(moment).replace(tzinfo=timezone.utc)

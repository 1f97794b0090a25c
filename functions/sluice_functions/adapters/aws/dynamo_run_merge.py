"""A page of runs in any of several state types: runs-by-state's partitions merged newest first.

Only runs-by-state holds a run's state type, so a listing of several state types reads one
partition per type (each with the deployment, flow and pool filters, which runs-by-state
projects) and merges them by `run_order`. Why not the deployment's, flow's or every run's
index filtered on the runs read from the table: that reads (and bills) every run of the
partition, in every state, to find the few active ones a scheduler or backfill asks for, while
the state partitions hold exactly the runs asked for and their entries are ~150 bytes.

Paging stays exact with one number: `run_order` is unique and every partition is sorted by it,
so "everything newer than X has been handed out" is a position in all of them at once. A page
reads each partition from the cursor down, at most `MAX_QUERY_REQUESTS_PER_PAGE` requests each,
and returns only entries no partition can still precede: when a partition stops early (its
filter kept too few entries within its budget), entries older than where it stopped wait for
the next page, and the cursor points there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...config import RUN_ORDER, RUNS_BY_STATE, TABLE_PARTITION_KEY, TABLE_SORT_KEY
from ...ports import FlowRunFilter
from ..pages import check_page_limit
from .dynamo_items import Item, decode_cursor, encode_cursor, s, sortable_time
from .dynamo_run_queries import flow_run_list_queries, sorted_state_types
from .dynamo_table import MAX_QUERY_REQUESTS_PER_PAGE, KeyQuery, SingleTable

#: Names the cursors of merged listings (never valid for a single index's listing).
MERGED_QUERY_NAME = f"{RUNS_BY_STATE.name}:merged"
#: The cursor's attribute binding it to the state types it was made for.
CURSOR_STATES = "states"


@dataclass
class _PartitionRead:
    """What one page read of one state partition: matching entries, newest first, and where it
    stopped (`run_order` of the last entry evaluated; None when the partition is exhausted)."""

    entries: list[Item]
    stopped_at: str | None


def _read_partition(table: SingleTable, query: KeyQuery, *, want: int,
                    skip: str | None) -> _PartitionRead:
    """Up to `want` entries of one partition (or what its request budget finds). `skip`: the
    cursor's own entry, which the inclusive sort condition reads again."""
    params = query.request(table.table_name)
    found: list[Item] = []
    last: Item | None = None
    for _ in range(MAX_QUERY_REQUESTS_PER_PAGE):
        params["Limit"] = want + 1 - len(found)  # +1: the skipped entry may be among them
        if last is not None:
            params["ExclusiveStartKey"] = last
        response = table.query_page(params, f"query {query.name}")
        found.extend(e for e in response.get("Items", []) if e[RUN_ORDER]["S"] != skip)
        last = response.get("LastEvaluatedKey")
        if last is None:
            return _PartitionRead(found, None)
        if len(found) >= want:
            break
    return _PartitionRead(found, last[RUN_ORDER]["S"] if last is not None else None)


def merged_page(table: SingleTable, flt: FlowRunFilter, *, limit: int,
                cursor: str | None) -> tuple[list[Item], str | None]:
    """Up to `limit` index entries of runs in any of `flt`'s state types, newest first, and a
    cursor (None only when nothing follows). Entries are runs-by-state's: the caller reads the
    runs and re-checks the filter, as for any listing."""
    check_page_limit(limit)
    states = ",".join(state_type.value for state_type in sorted_state_types(flt))
    through = None
    if cursor:
        through = decode_cursor(cursor, MERGED_QUERY_NAME, (CURSOR_STATES, RUN_ORDER),
                                (CURSOR_STATES, states))[RUN_ORDER]["S"]
        if flt.scheduled_after is not None and through < sortable_time(flt.scheduled_after):
            return [], None  # a cursor below the window: nothing of it is left
    reads = [_read_partition(table, query, want=limit + 1, skip=through)
             for query in flow_run_list_queries(flt, through=through)]
    # Every partition has been read down to `frontier` (or to its end): entries from there up
    # are all known; below it, a partition that stopped early may still hold newer ones.
    frontier = max((r.stopped_at for r in reads if r.stopped_at is not None), default=None)
    entries = sorted(_each_run_once(e for r in reads for e in r.entries),
                     key=lambda e: e[RUN_ORDER]["S"], reverse=True)
    known = [e for e in entries if frontier is None or e[RUN_ORDER]["S"] >= frontier]
    page = known[:limit]
    if len(known) > limit:
        next_order: str | None = page[-1][RUN_ORDER]["S"]
    else:
        next_order = frontier
    if next_order is None:
        return page, None
    return page, encode_cursor(MERGED_QUERY_NAME,
                               {CURSOR_STATES: s(states), RUN_ORDER: s(next_order)})


def run_index_page(table: SingleTable, flt: FlowRunFilter, *, limit: int,
                   cursor: str | None) -> tuple[list[Item], str | None]:
    """The index entries of one page of `list_flow_runs`: one partition's page, or the merge
    of several state partitions."""
    if flt.state_types and len(flt.state_types) > 1:
        return merged_page(table, flt, limit=limit, cursor=cursor)
    (query,) = flow_run_list_queries(flt)
    return table.page(query, limit=limit, cursor=cursor)


def every_run_index_entry(table: SingleTable, flt: FlowRunFilter) -> list[Item]:
    """Every index entry `flt` selects, in no particular order (for counts that must read the
    runs: tags, parents, slot scopes are not in the indexes)."""
    return _each_run_once(entry for query in flow_run_list_queries(flt, newest_first=False)
                          for entry in table.all(query))


def _each_run_once(entries: Iterable[Item]) -> list[Item]:
    """One entry per run: a run the index still shows in its previous state too (the index
    lags the table) is read once; the run as read from the table then decides whether it
    matches. (BatchGetItem also refuses a request that names one key twice.)"""
    by_key: dict[tuple[str, str], Item] = {}
    for entry in entries:
        by_key.setdefault((entry[TABLE_PARTITION_KEY]["S"], entry[TABLE_SORT_KEY]["S"]), entry)
    return list(by_key.values())

"""Which run index answers a `FlowRunFilter`, and the Query that asks it.

The most selective key wins: a deployment, else a flow, else a single state type, else the
"every run by time" index. The time range is a sort-key condition on `run_order`; the rest of
the filter is a FilterExpression on the attributes every run index projects.
"""

from __future__ import annotations

from sluice.models import FlowRun

from ...config import (
    RUN_DEPLOYMENT_ID,
    RUN_ENTITY_FLOW_RUN,
    RUN_FLOW_NAME,
    RUN_ORDER,
    RUN_POOL,
    RUN_STATE_TYPE,
    RUNS_BY_DEPLOYMENT,
    RUNS_BY_FLOW,
    RUNS_BY_STATE,
    RUNS_BY_TIME,
    TABLE_PARTITION_KEY,
    GlobalIndex,
)
from ...ports import FlowRunFilter
from .dynamo_items import run_time, s, slot_holders_partition, sortable_time, utc
from .dynamo_table import KeyQuery


def matches(run: FlowRun, flt: FlowRunFilter) -> bool:
    """Whether a run (as read from the table) satisfies the filter."""
    moment = utc(run_time(run))
    return (
        (flt.flow_name is None or run.flow_name == flt.flow_name)
        and (flt.deployment_id is None or run.deployment_id == flt.deployment_id)
        and (flt.pool is None or run.pool == flt.pool)
        and (not flt.state_types or run.state.type in flt.state_types)
        and (flt.scheduled_after is None or moment >= utc(flt.scheduled_after))
        and (flt.scheduled_before is None or moment < utc(flt.scheduled_before))
        and (flt.holds_slot_of is None or flt.holds_slot_of in run.slot_scopes)
        and (not flt.tags or flt.tags <= set(run.tags))
        and (flt.parent_flow_run_id is None or run.parent_flow_run_id == flt.parent_flow_run_id)
    )


def _index_for(flt: FlowRunFilter) -> tuple[GlobalIndex, str]:
    if flt.deployment_id:
        return RUNS_BY_DEPLOYMENT, flt.deployment_id
    if flt.flow_name:
        return RUNS_BY_FLOW, flt.flow_name
    if flt.state_types and len(flt.state_types) == 1:
        return RUNS_BY_STATE, next(iter(flt.state_types)).value
    return RUNS_BY_TIME, RUN_ENTITY_FLOW_RUN


def _query(flt: FlowRunFilter, index: GlobalIndex, partition_value: str, *,
           newest_first: bool) -> KeyQuery:
    query = KeyQuery(name=index.name, index=index, partition=(index.partition_key, partition_value),
                     forward=not newest_first)
    # "<time>#<id>" >= "<after>" exactly when time >= after, and < "<before>" exactly when
    # time < before: the id part never decides a comparison with a bare time.
    if flt.scheduled_after is not None or flt.scheduled_before is not None:
        query.names["#order"] = RUN_ORDER
        bounds = []
        if flt.scheduled_after is not None:
            query.values[":after"] = s(sortable_time(flt.scheduled_after))
            bounds.append("#order >= :after")
        if flt.scheduled_before is not None:
            query.values[":before"] = s(sortable_time(flt.scheduled_before))
            bounds.append("#order < :before")
        query.sort_condition = (
            "#order BETWEEN :after AND :before" if len(bounds) == 2 else bounds[0]
        )
    conditions: list[str] = []
    for attribute, wanted in ((RUN_DEPLOYMENT_ID, flt.deployment_id),
                              (RUN_FLOW_NAME, flt.flow_name), (RUN_POOL, flt.pool)):
        if wanted is not None and attribute != index.partition_key:
            query.names[f"#{attribute}"] = attribute
            query.values[f":{attribute}"] = s(wanted)
            conditions.append(f"#{attribute} = :{attribute}")
    if flt.state_types and index.partition_key != RUN_STATE_TYPE:
        query.names["#state"] = RUN_STATE_TYPE
        placeholders = []
        for i, state_type in enumerate(sorted(flt.state_types, key=lambda t: t.value)):
            query.values[f":state{i}"] = s(state_type.value)
            placeholders.append(f":state{i}")
        conditions.append(f"#state IN ({', '.join(placeholders)})")
    if conditions:
        query.filter_expression = " AND ".join(conditions)
    return query


def flow_run_list_query(flt: FlowRunFilter) -> KeyQuery:
    """The Query behind `list_flow_runs`: newest first, ties by id descending."""
    index, partition_value = _index_for(flt)
    return _query(flt, index, partition_value, newest_first=True)


def slot_holders_query(scope: str, name: str) -> KeyQuery:
    """The runs holding a slot of a deployment or pool: a table partition, read consistently."""
    return KeyQuery(name="slot-holders",
                    partition=(TABLE_PARTITION_KEY, slot_holders_partition(scope, name)))


def flow_run_count_queries(flt: FlowRunFilter) -> list[KeyQuery]:
    """Queries whose counts add up to `count_flow_runs`. Several state types without a flow or
    deployment are counted one state partition each (e.g. a pool's active runs), never by
    reading every run."""
    if not flt.deployment_id and not flt.flow_name and flt.state_types:
        return [
            _query(FlowRunFilter(pool=flt.pool, state_types=frozenset({state_type}),
                                 scheduled_after=flt.scheduled_after,
                                 scheduled_before=flt.scheduled_before),
                   RUNS_BY_STATE, state_type.value, newest_first=False)
            for state_type in sorted(flt.state_types, key=lambda t: t.value)
        ]
    index, partition_value = _index_for(flt)
    return [_query(flt, index, partition_value, newest_first=False)]


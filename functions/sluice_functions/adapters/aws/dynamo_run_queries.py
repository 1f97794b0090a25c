"""Which run index answers a `FlowRunFilter`, and the Queries that ask it.

Only runs-by-state holds a run's state type (as its key: `config.RUN_FILTER_ATTRIBUTES`), so a
filter on state types reads runs-by-state, one Query per state type, and the deployment, flow
and pool filters (projected there) go into a FilterExpression. Without state types the most
selective key wins: a deployment, else a flow, else the "every run by time" index. The time
range is a sort-key condition on `run_order`. Several state partitions are listed newest first
by merging them (`dynamo_run_merge`), counted one partition each.
"""

from __future__ import annotations

from sluice.models import FlowRun, StateType

from ...config import (
    RUN_DEPLOYMENT_ID,
    RUN_ENTITY_FLOW_RUN,
    RUN_FLOW_NAME,
    RUN_ORDER,
    RUN_POOL,
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
    """The index of a filter without state types, and its partition."""
    if flt.deployment_id:
        return RUNS_BY_DEPLOYMENT, flt.deployment_id
    if flt.flow_name:
        return RUNS_BY_FLOW, flt.flow_name
    return RUNS_BY_TIME, RUN_ENTITY_FLOW_RUN


def sorted_state_types(flt: FlowRunFilter) -> list[StateType]:
    """The filter's state types in a fixed order (the order their partitions are read in)."""
    return sorted(flt.state_types or (), key=lambda state_type: state_type.value)


def _query(flt: FlowRunFilter, index: GlobalIndex, partition_value: str, *,
           newest_first: bool, through: str | None = None) -> KeyQuery:
    """The Query of one partition. `through`: a `run_order` the Query stops at, inclusive (a
    merged listing's cursor, which replaces `scheduled_before`: it lies below it)."""
    query = KeyQuery(name=index.name, index=index, partition=(index.partition_key, partition_value),
                     forward=not newest_first)
    if through is not None:
        query.names["#order"] = RUN_ORDER
        query.values[":through"] = s(through)
        if flt.scheduled_after is not None:
            query.values[":after"] = s(sortable_time(flt.scheduled_after))
            query.sort_condition = "#order BETWEEN :after AND :through"
        else:
            query.sort_condition = "#order <= :through"
    # "<time>#<id>" >= "<after>" exactly when time >= after, and < "<before>" exactly when
    # time < before: the id part never decides a comparison with a bare time.
    elif flt.scheduled_after is not None or flt.scheduled_before is not None:
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
    if conditions:
        query.filter_expression = " AND ".join(conditions)
    return query


def flow_run_list_queries(flt: FlowRunFilter, *, newest_first: bool = True,
                          through: str | None = None) -> list[KeyQuery]:
    """The Queries whose entries together are the runs `flt` selects by its index attributes:
    one per state type on runs-by-state (the other filters projected there), or one on the
    deployment's, the flow's or every run's partition when no state type is asked for.
    `newest_first`: descending `run_order` (listings), else ascending; `through`: see `_query`."""
    if flt.state_types:
        return [_query(flt, RUNS_BY_STATE, state_type.value, newest_first=newest_first,
                       through=through)
                for state_type in sorted_state_types(flt)]
    index, partition_value = _index_for(flt)
    return [_query(flt, index, partition_value, newest_first=newest_first, through=through)]


def slot_holders_query(scope: str, name: str) -> KeyQuery:
    """The runs holding a slot of a deployment or pool: a table partition, read consistently."""
    return KeyQuery(name="slot-holders",
                    partition=(TABLE_PARTITION_KEY, slot_holders_partition(scope, name)))


def flow_run_count_queries(flt: FlowRunFilter) -> list[KeyQuery]:
    """Queries whose counts add up to `count_flow_runs`: state types are counted one state
    partition each, with the deployment, flow and pool filters, never by reading every run."""
    return flow_run_list_queries(flt, newest_first=False)

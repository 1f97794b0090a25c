"""Issue 20 on DynamoDB (moto): only runs-by-state holds a run's state type, so a state change
writes that one index, and every listing and count with state types still finds exactly the
runs it names (one state: its partition; several: the partitions merged newest first).

moto honours INCLUDE projections (an index entry holds the keys and the projected attributes
only, and a FilterExpression on anything else matches nothing), so these tests would see a
listing that filtered on `state_type` where it is no longer projected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.exceptions import BadRequest
from sluice.models import FlowRun, State, StateType
from sluice_functions.adapters.aws import DynamoRunStore, dynamo_run_merge
from sluice_functions.config import (
    GLOBAL_INDEXES,
    RUN_STATE_TYPE,
    RUNS_BY_DEPLOYMENT,
    RUNS_BY_FLOW,
    RUNS_BY_STATE,
    RUNS_BY_TIME,
    table_key_schema,
)
from sluice_functions.ports import ACTIVE_STATE_TYPES, FlowRunFilter

REGION = "us-east-1"
TABLE = "sluice-run-indexes"
T0 = datetime(2030, 5, 1, tzinfo=UTC)
ENDED = frozenset({StateType.COMPLETED, StateType.FAILED})


@pytest.fixture
def store(dynamodb) -> DynamoRunStore:
    return DynamoRunStore(dynamodb, TABLE)


@pytest.fixture
def queries(dynamodb, monkeypatch) -> list[dict[str, Any]]:
    """Every Query request the store sends, as sent."""
    sent: list[dict[str, Any]] = []
    original = dynamodb.query

    def recording(**params: Any) -> Any:
        sent.append(params)
        return original(**params)

    monkeypatch.setattr(dynamodb, "query", recording)
    return sent


def add(store: DynamoRunStore, run_id: str, minute: int, state_type: StateType, *,
        flow: str = "etl", pool: str = "default", deployment_id: str | None = None) -> FlowRun:
    at = T0 + timedelta(minutes=minute)
    return store.create_flow_run(FlowRun(
        id=run_id, flow_name=flow, pool=pool, deployment_id=deployment_id, scheduled_at=at,
        state=State(type=state_type, timestamp=at)))


def listed(store: DynamoRunStore, flt: FlowRunFilter, limit: int = 50) -> list[str]:
    """Every run id of a listing, page after page."""
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        page = store.list_flow_runs(flt, limit=limit, cursor=cursor)
        ids += [run.id for run in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("the listing never ended")


def a_mixed_table(store: DynamoRunStore) -> None:
    """Two flows, two deployments, two pools, five state types, one run a minute."""
    layout = [
        ("c1", StateType.COMPLETED, "etl", "default", "dep-a"),
        ("f1", StateType.FAILED, "etl", "gpu", "dep-a"),
        ("r1", StateType.RUNNING, "etl", "default", "dep-a"),
        ("s1", StateType.SCHEDULED, "ml", "gpu", "dep-b"),
        ("c2", StateType.COMPLETED, "ml", "default", "dep-b"),
        ("p1", StateType.PENDING, "etl", "gpu", None),
        ("f2", StateType.FAILED, "ml", "default", "dep-b"),
        ("c3", StateType.COMPLETED, "etl", "gpu", "dep-a"),
        ("r2", StateType.RUNNING, "ml", "gpu", "dep-b"),
        ("c4", StateType.COMPLETED, "etl", "default", None),
    ]
    for minute, (run_id, state_type, flow, pool, deployment) in enumerate(layout):
        add(store, run_id, minute, state_type, flow=flow, pool=pool, deployment_id=deployment)


# ---- listings ---------------------------------------------------------------------------------


def test_a_flow_and_one_state_read_that_state_partition(store, queries):
    # Given runs of two flows in several states
    a_mixed_table(store)
    queries.clear()
    # When the Completed runs of one flow are listed
    ids = listed(store, FlowRunFilter(flow_name="etl",
                                      state_types=frozenset({StateType.COMPLETED})))
    # Then exactly those, newest first, from runs-by-state filtered on the flow
    assert ids == ["c4", "c3", "c1"]
    assert {q["IndexName"] for q in queries} == {RUNS_BY_STATE.name}
    assert {q["ExpressionAttributeValues"][":qpk"]["S"] for q in queries} == {"COMPLETED"}


def test_a_deployment_and_several_states_merge_the_state_partitions(store, queries):
    a_mixed_table(store)
    queries.clear()
    # When a deployment's ended runs, its active runs (the backfill's question) and its
    # waiting or running ones are listed
    ended = listed(store, FlowRunFilter(deployment_id="dep-a", state_types=ENDED))
    active = listed(store, FlowRunFilter(deployment_id="dep-a", state_types=ACTIVE_STATE_TYPES))
    waiting_or_running = listed(store, FlowRunFilter(deployment_id="dep-b", state_types=frozenset(
        {StateType.SCHEDULED, StateType.RUNNING})))
    # Then each lists its runs in those states, newest first, from the state partitions only
    assert ended == ["c3", "f1", "c1"]
    assert active == ["r1"]
    assert waiting_or_running == ["r2", "s1"]
    assert {q["IndexName"] for q in queries} == {RUNS_BY_STATE.name}


def test_a_pool_and_several_states(store):
    a_mixed_table(store)
    ids = listed(store, FlowRunFilter(pool="gpu", state_types=frozenset(
        {StateType.PENDING, StateType.RUNNING, StateType.SCHEDULED})))
    assert ids == ["r2", "p1", "s1"]


def test_a_time_range_and_several_states(store):
    # Given runs at minutes 0..9; the window is minutes 2 (included) to 8 (excluded)
    a_mixed_table(store)
    window = {"scheduled_after": T0 + timedelta(minutes=2),
              "scheduled_before": T0 + timedelta(minutes=8)}
    # When the ended runs of the window are listed, in one page and in pages of one
    whole = listed(store, FlowRunFilter(state_types=ENDED, **window))
    paged = listed(store, FlowRunFilter(state_types=ENDED, **window), limit=1)
    # Then both hold the ended runs inside the window only
    assert whole == paged == ["c3", "f2", "c2"]


def test_pages_of_several_states_hand_out_every_run_once_in_order(store):
    # Given 30 runs round-robin over three states and two flows
    states = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
    for n in range(30):
        add(store, f"run-{n:02}", n, states[n % 3], flow="etl" if n % 2 else "ml")
    flt = FlowRunFilter(flow_name="etl", state_types=frozenset(states))
    expected = [f"run-{n:02}" for n in reversed(range(30)) if n % 2]
    # When listed in pages of 1, 4 and 7 (and more than everything)
    # Then every page size yields the same runs, newest first, none twice, none missing
    for limit in (1, 4, 7, 100):
        assert listed(store, flt, limit=limit) == expected, limit


def test_a_partition_that_stops_early_holds_back_older_runs_of_the_others(store, monkeypatch):
    # Given a selective flow filter: the Crashed partition holds many runs of another flow
    # above the one it matches, and one request per partition per page
    add(store, "old-completed", 0, StateType.COMPLETED)
    add(store, "crashed", 1, StateType.CRASHED)
    for n in range(12):
        add(store, f"noise-{n:02}", 10 + n, StateType.CRASHED, flow="other")
    add(store, "new-completed", 30, StateType.COMPLETED)
    monkeypatch.setattr(dynamo_run_merge, "MAX_QUERY_REQUESTS_PER_PAGE", 1)
    flt = FlowRunFilter(flow_name="etl",
                        state_types=frozenset({StateType.COMPLETED, StateType.CRASHED}))
    # When listed in pages of 2 (each partition read evaluates at most 3 entries per page)
    first = store.list_flow_runs(flt, limit=2)
    # Then the first page holds only what no partition can still precede, and says more follow
    assert [run.id for run in first.items] == ["new-completed"]
    assert first.next_cursor is not None
    # And following the cursors lists every run exactly once, newest first
    assert listed(store, flt, limit=2) == ["new-completed", "crashed", "old-completed"]


def test_a_merged_cursor_is_refused_by_a_listing_of_other_states(store):
    a_mixed_table(store)
    page = store.list_flow_runs(FlowRunFilter(state_types=ENDED), limit=1)
    assert page.next_cursor is not None
    with pytest.raises(BadRequest, match="invalid cursor"):
        store.list_flow_runs(FlowRunFilter(state_types=ACTIVE_STATE_TYPES), limit=1,
                             cursor=page.next_cursor)


def test_a_run_moves_between_state_listings_when_its_state_changes(store):
    # Given a Scheduled run
    run = add(store, "mover", 0, StateType.SCHEDULED, deployment_id="dep-a")
    waiting = FlowRunFilter(deployment_id="dep-a", state_types=frozenset({StateType.SCHEDULED}))
    active = FlowRunFilter(deployment_id="dep-a", state_types=ACTIVE_STATE_TYPES)
    assert listed(store, waiting) == ["mover"] and listed(store, active) == []
    # When it is claimed
    store.set_flow_run_state(run.model_copy(update={"state": State(type=StateType.PENDING)}),
                             "claim-1")
    # Then it is listed (and counted) as active only
    assert listed(store, waiting) == [] and listed(store, active) == ["mover"]
    assert store.count_flow_runs(active) == 1 and store.count_flow_runs(waiting) == 0


# ---- counts -------------------------------------------------------------------------------------


def test_counts_with_state_types_add_one_count_per_state_partition(store, queries):
    a_mixed_table(store)
    queries.clear()
    after = T0 + timedelta(minutes=3)
    cases = [
        (FlowRunFilter(flow_name="etl", state_types=ENDED), 4),
        (FlowRunFilter(deployment_id="dep-b", state_types=ACTIVE_STATE_TYPES), 1),
        (FlowRunFilter(deployment_id="dep-b", state_types=frozenset(
            {StateType.SCHEDULED, StateType.RUNNING})), 2),
        (FlowRunFilter(pool="default", state_types=frozenset({StateType.COMPLETED})), 3),
        (FlowRunFilter(state_types=ENDED, scheduled_after=after), 4),
        (FlowRunFilter(pool="gpu", deployment_id="dep-a", state_types=ENDED), 2),
    ]
    for flt, expected in cases:
        assert store.count_flow_runs(flt) == expected, flt
    assert {q["IndexName"] for q in queries} == {RUNS_BY_STATE.name}
    assert all(q["Select"] == "COUNT" for q in queries)


def test_counts_without_state_types_use_the_keyed_indexes(store, queries):
    a_mixed_table(store)
    queries.clear()
    assert store.count_flow_runs(FlowRunFilter(flow_name="ml")) == 4
    assert store.count_flow_runs(FlowRunFilter(deployment_id="dep-a", pool="gpu")) == 2
    assert store.count_flow_runs(FlowRunFilter()) == 10
    assert [q["IndexName"] for q in queries] == [
        RUNS_BY_FLOW.name, RUNS_BY_DEPLOYMENT.name, RUNS_BY_TIME.name]


# ---- what a state change writes -----------------------------------------------------------------


def index_entries(dynamodb, index_name: str) -> list[dict[str, Any]]:
    """Every entry of an index as DynamoDB holds it (a Scan of the index)."""
    return dynamodb.scan(TableName=TABLE, IndexName=index_name)["Items"]


def test_a_state_change_leaves_the_flow_deployment_and_time_indexes_untouched(store, dynamodb):
    # Given the table as the stack creates it: state_type is runs-by-state's key and is
    # projected nowhere else
    projections = {i["IndexName"]: i["Projection"]
                   for i in table_key_schema()["GlobalSecondaryIndexes"]}
    for index in GLOBAL_INDEXES:
        assert RUN_STATE_TYPE not in projections[index.name]["NonKeyAttributes"]
    # And a run in every index
    run = add(store, "run-1", 0, StateType.SCHEDULED, deployment_id="dep-a")
    others = (RUNS_BY_DEPLOYMENT.name, RUNS_BY_FLOW.name, RUNS_BY_TIME.name)
    before = {name: index_entries(dynamodb, name) for name in others}
    # When its state changes twice (claimed, then Running)
    for n, state_type in enumerate((StateType.PENDING, StateType.RUNNING)):
        run = store.set_flow_run_state(
            run.model_copy(update={"state": State(type=state_type)}), f"t{n}")
    # Then those three indexes hold the very same entries, with no state in them: DynamoDB
    # writes an index only when an attribute it holds changes, so they cost no write unit
    after = {name: index_entries(dynamodb, name) for name in others}
    assert after == before
    assert all(len(entries) == 1 and RUN_STATE_TYPE not in entries[0]
               for entries in after.values())
    # And runs-by-state moved the run to its new partition
    (entry,) = index_entries(dynamodb, RUNS_BY_STATE.name)
    assert entry[RUN_STATE_TYPE] == {"S": "RUNNING"}

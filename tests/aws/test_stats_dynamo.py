"""Issue 16 on DynamoDB (moto): the console's counts per time bucket and state type read the run
indexes with a projection, follow the flow/deployment/pool filters, count Late runs by name,
say `truncated` when their page bound is hit; and the `tag` / `parent_flow_run_id` filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.models import FlowRun, State, StateType
from sluice.models.states import Late
from sluice_functions.adapters.aws import DynamoRunStore, dynamo_run_stats
from sluice_functions.ports import FlowRunFilter
from sluice_functions.service.stats import flow_run_stats

REGION = "us-east-1"
TABLE = "sluice-stats"
DAY = datetime(2026, 3, 2, tzinfo=UTC)
NOW = DAY + timedelta(days=1)


@pytest.fixture
def store(dynamodb) -> DynamoRunStore:
    return DynamoRunStore(dynamodb, TABLE)


def add(store: DynamoRunStore, run_id: str, at: datetime, state: State | StateType, *,
        flow: str = "etl", **fields: Any) -> FlowRun:
    if isinstance(state, StateType):
        state = State(type=state, timestamp=at)
    return store.create_flow_run(FlowRun(id=run_id, flow_name=flow, pool="default", state=state,
                                         scheduled_at=at, **fields))


def hours(start: int, end: int) -> FlowRunFilter:
    return FlowRunFilter(scheduled_after=DAY.replace(hour=start),
                         scheduled_before=DAY.replace(hour=end))


def test_runs_are_counted_per_bucket_and_state_from_the_index(store):
    # Given runs around the window 10:00-13:00
    add(store, "r0", DAY.replace(hour=9, minute=59), StateType.COMPLETED)
    add(store, "r1", DAY.replace(hour=10), StateType.COMPLETED)
    add(store, "r2", DAY.replace(hour=10, minute=50), StateType.FAILED)
    add(store, "r3", DAY.replace(hour=11, minute=10), StateType.COMPLETED)
    add(store, "r4", DAY.replace(hour=12, minute=59, second=59), StateType.RUNNING)
    add(store, "r5", DAY.replace(hour=13), StateType.FAILED)
    # When counted per hour
    counted = store.count_flow_runs_by_bucket(hours(10, 13), bucket_seconds=3600, now=NOW)
    # Then
    assert dict(counted.counts) == {(0, StateType.COMPLETED): 1, (0, StateType.FAILED): 1,
                                    (1, StateType.COMPLETED): 1, (2, StateType.RUNNING): 1}
    assert counted.late == 0 and counted.truncated is False


def test_filters_apply_and_late_runs_are_counted_by_their_name(store):
    at = DAY.replace(hour=2)
    add(store, "late", at, Late(scheduled_time=at), deployment_id="dep-1")
    add(store, "waiting", at, StateType.SCHEDULED, deployment_id="dep-1")
    add(store, "future-late-name", NOW + timedelta(hours=1), Late(), deployment_id="dep-1")
    add(store, "other", at, StateType.COMPLETED, flow="ml")
    window = FlowRunFilter(scheduled_after=DAY, scheduled_before=DAY + timedelta(days=2))
    overall = store.count_flow_runs_by_bucket(window, bucket_seconds=86400, now=NOW)
    by_deployment = store.count_flow_runs_by_bucket(
        FlowRunFilter(deployment_id="dep-1", scheduled_after=DAY,
                      scheduled_before=DAY + timedelta(days=1)), bucket_seconds=3600, now=NOW)
    by_flow = store.count_flow_runs_by_bucket(
        FlowRunFilter(flow_name="ml", scheduled_after=DAY, scheduled_before=NOW),
        bucket_seconds=3600, now=NOW)
    # Late counts only runs named Late whose time has passed
    assert overall.late == 1
    assert dict(overall.counts) == {(0, StateType.SCHEDULED): 2, (0, StateType.COMPLETED): 1,
                                    (1, StateType.SCHEDULED): 1}
    assert dict(by_deployment.counts) == {(2, StateType.SCHEDULED): 2}
    assert by_deployment.late == 1
    assert dict(by_flow.counts) == {(2, StateType.COMPLETED): 1} and by_flow.late == 0


def test_the_page_bound_makes_the_answer_say_truncated(store, dynamodb, monkeypatch):
    # Given three runs and DynamoDB answering two index entries per page (as 1 MB pages would
    # thousands), and a bound of one page
    for n in range(3):
        add(store, f"r{n}", DAY.replace(hour=1, minute=n), StateType.COMPLETED)
    original = dynamodb.query
    monkeypatch.setattr(dynamodb, "query", lambda **params: original(**{**params, "Limit": 2}))
    monkeypatch.setattr(dynamo_run_stats, "MAX_STATS_QUERY_PAGES", 1)
    # When counted
    bounded = store.count_flow_runs_by_bucket(hours(0, 4), bucket_seconds=3600, now=NOW)
    # Then the answer holds what the one page held and says it stopped
    assert dict(bounded.counts) == {(1, StateType.COMPLETED): 2} and bounded.truncated is True
    # And with room for every page it is whole
    monkeypatch.setattr(dynamo_run_stats, "MAX_STATS_QUERY_PAGES", 2)
    whole = store.count_flow_runs_by_bucket(hours(0, 4), bucket_seconds=3600, now=NOW)
    assert dict(whole.counts) == {(1, StateType.COMPLETED): 3} and whole.truncated is False


def test_the_queries_read_only_the_time_of_each_entry_one_state_partition_each(
        store, dynamodb, monkeypatch):
    # Given the client's Query requests recorded
    add(store, "r1", DAY.replace(hour=1), StateType.COMPLETED)
    requests: list[dict[str, Any]] = []
    original = dynamodb.query

    def recording(**params: Any) -> Any:
        requests.append(params)
        return original(**params)

    monkeypatch.setattr(dynamodb, "query", recording)
    store.count_flow_runs_by_bucket(hours(0, 4), bucket_seconds=3600, now=DAY.replace(hour=0))
    # Then the count read runs-by-state (the only index holding the state type), one
    # partition per state type, projected to the one attribute it needs
    assert {r["IndexName"] for r in requests} == {"runs-by-state"}
    assert sorted(r["ExpressionAttributeValues"][":qpk"]["S"] for r in requests) == sorted(
        state_type.value for state_type in StateType)
    for count_query in requests:
        projected = {count_query["ExpressionAttributeNames"][name.strip()]
                     for name in count_query["ProjectionExpression"].split(",")}
        assert projected == {"run_order"}


def test_the_use_case_fills_every_bucket_of_the_window(store):
    add(store, "r1", DAY.replace(hour=3, minute=7), StateType.CRASHED)
    stats = flow_run_stats(store=store, now=NOW, since=DAY, until=DAY.replace(hour=6),
                           bucket_seconds=3600)
    assert [b.counts for b in stats.buckets] == [{}, {}, {}, {StateType.CRASHED: 1}, {}, {}]
    assert stats.totals == {StateType.CRASHED: 1}


def test_runs_are_listed_and_counted_by_tags_and_parent(store):
    parent = add(store, "parent", DAY.replace(hour=1), StateType.RUNNING, tags=["a", "b"])
    add(store, "tagged", DAY.replace(hour=2), StateType.RUNNING, tags=["a"])
    add(store, "child", DAY.replace(hour=3), StateType.COMPLETED, parent_flow_run_id="parent")
    both = FlowRunFilter(tags=frozenset({"a", "b"}))
    assert [r.id for r in store.list_flow_runs(both, limit=10).items] == [parent.id]
    assert store.count_flow_runs(FlowRunFilter(tags=frozenset({"a"}))) == 2
    children = FlowRunFilter(parent_flow_run_id="parent")
    assert [r.id for r in store.list_flow_runs(children, limit=10).items] == ["child"]
    assert store.count_flow_runs(children) == 1

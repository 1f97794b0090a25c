"""Issue 20 on DynamoDB (moto): a state change is one write with the history inside the run
item (schema 3), finished task runs are packed, and a table below schema 3 keeps the old layout
until it is migrated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.exceptions import BadRequest, Conflict
from sluice.models import FlowRun, State, StateType, TaskRun
from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.adapters.aws import dynamo_run_item, dynamo_task_sheets
from sluice_functions.config import SCHEMA_VERSION, TABLE_PARTITION_KEY
from sluice_functions.migrations.dynamo import DynamoMigrationBackend
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate

REGION = "us-east-1"
TABLE = "sluice-lean-writes"
BASE = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def store(dynamodb) -> DynamoRunStore:
    return DynamoRunStore(dynamodb, TABLE)


def a_run(**fields: Any) -> FlowRun:
    return FlowRun(id=uuid.uuid4().hex, flow_name="etl", name="brave-otter", pool="default",
                   state=State(type=StateType.SCHEDULED, scheduled_time=BASE), scheduled_at=BASE,
                   **fields)


def partition(dynamodb: Any, flow_run_id: str) -> list[dict]:
    return dynamodb.query(TableName=TABLE, KeyConditionExpression="#pk = :pk",
                          ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
                          ExpressionAttributeValues={":pk": {"S": f"RUN#{flow_run_id}"}},
                          ConsistentRead=True)["Items"]


def move(store: DynamoRunStore, run: FlowRun, state_type: StateType, transition: str | None,
         **state: Any) -> FlowRun:
    return store.set_flow_run_state(
        run.model_copy(update={"state": State(type=state_type, **state)}), transition)


def task(flow_run_id: str, n: int, state_type: StateType = StateType.COMPLETED,
         version: int = 3) -> TaskRun:
    return TaskRun(id=f"{n:04d}" + "a" * 28, flow_run_id=flow_run_id, task_name="step",
                   name=f"step-{n}", task_key="flows.step", state=State(type=state_type),
                   start_time=BASE, end_time=BASE, run_count=1, version=version)


# ---- state history inside the run item ---------------------------------------------------------


def test_a_run_lives_in_one_item_with_its_history_and_transition_ids(store, dynamodb):
    # Given a run created and moved through three states, one write each
    run = store.create_flow_run(a_run())
    run = move(store, run, StateType.PENDING, "claim")
    run = move(store, run, StateType.RUNNING, "start")
    done = move(store, run, StateType.COMPLETED, "end", message="ok")

    # Then its partition is the run item alone, and the history reads back in order
    assert len(partition(dynamodb, done.id)) == 1
    assert [s.type for s in store.list_state_history(done.id)] == [
        StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
    assert store.list_state_history(done.id)[-1].message == "ok"
    assert store.has_transition(done.id, "start") and not store.has_transition(done.id, "other")

    # When a transition is replayed on the current version, Then it is refused, nothing written
    before = partition(dynamodb, done.id)
    with pytest.raises(Conflict, match="already applied"):
        move(store, done, StateType.COMPLETED, "end")
    assert partition(dynamodb, done.id) == before


def test_a_write_that_passes_through_a_state_keeps_its_entry(store):
    # Given a Scheduled run, When a claim that starts it is written as one change
    run = store.create_flow_run(a_run())
    started = store.set_flow_run_state(
        run.model_copy(update={"state": State(type=StateType.RUNNING)}), None,
        (State(type=StateType.PENDING, message="claimed by w1"),))

    # Then the version counts both states and the history has Pending before Running
    assert started.version == run.version + 2
    history = store.list_state_history(run.id)
    assert [(s.type, s.message) for s in history[1:]] == [
        (StateType.PENDING, "claimed by w1"), (StateType.RUNNING, None)]


def test_renewals_keep_the_history_and_stale_writes_lose(store):
    run = move(store, store.create_flow_run(a_run()), StateType.RUNNING, "start")
    renewed = store.update_flow_run(run.model_copy(update={"heartbeat_at": BASE}))
    assert len(store.list_state_history(run.id)) == 2  # the UpdateItem left the entries alone
    with pytest.raises(Conflict, match="stale"):
        move(store, run, StateType.COMPLETED, "late")  # still at the version before renewal
    assert move(store, renewed, StateType.COMPLETED, "end").state.type is StateType.COMPLETED


def test_a_long_history_moves_out_of_the_item_and_reads_back_whole(store, dynamodb):
    # Given a run that goes back and forth far more often than the inline history holds
    run = store.create_flow_run(a_run())
    changes = dynamo_run_item.INLINE_HISTORY_MAX_ENTRIES * 2 + 3
    for i in range(changes):
        state_type = StateType.RUNNING if i % 2 == 0 else StateType.PAUSED
        run = move(store, run, state_type, f"t-{i}", message="m" * 40)

    # Then older entries went to STATE# items, the run item stays small,
    items = partition(dynamodb, run.id)
    assert any(i["sk"]["S"].startswith("STATE#") for i in items)
    [run_item] = [i for i in items if i["sk"]["S"] == "RUN"]
    assert len(run_item[dynamo_run_item.HISTORY]["L"]) <= dynamo_run_item.INLINE_HISTORY_MAX_ENTRIES
    # the whole history reads back in order, and old transition ids are still known
    history = store.list_state_history(run.id)
    assert len(history) == changes + 1 and history[0].type is StateType.SCHEDULED
    assert [h.type for h in history[1:3]] == [StateType.RUNNING, StateType.PAUSED]
    assert store.has_transition(run.id, "t-0") and store.has_transition(run.id, f"t-{changes - 1}")


def test_a_big_state_message_moves_the_history_out_by_its_size(store, dynamodb):
    run = store.create_flow_run(a_run())
    for i in range(4):
        run = move(store, run, StateType.RUNNING if i % 2 == 0 else StateType.PAUSED, f"b-{i}",
                   message="x" * 1500)
    [run_item] = [i for i in partition(dynamodb, run.id) if i["sk"]["S"] == "RUN"]
    assert int(run_item[dynamo_run_item.HISTORY_BYTES]["N"]) <= dynamo_run_item.INLINE_HISTORY_MAX_BYTES
    assert len(store.list_state_history(run.id)) == 5


def test_a_run_written_in_the_old_layout_continues_in_the_new_one(dynamodb):
    # Given a run written by code before schema 3 (history items and a transition guard)
    old = DynamoRunStore(dynamodb, TABLE, history_inline=lambda: False)
    run = move(old, old.create_flow_run(a_run()), StateType.PENDING, "claim")
    assert len(partition(dynamodb, run.id)) == 4

    # When today's code moves it on, Then the history merges both and the old id is known
    new = DynamoRunStore(dynamodb, TABLE)
    done = move(new, move(new, run, StateType.RUNNING, "start"), StateType.COMPLETED, "end")
    assert [s.type for s in new.list_state_history(done.id)] == [
        StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
    assert new.has_transition(done.id, "claim") and new.has_transition(done.id, "end")
    with pytest.raises(Conflict):
        move(new, run, StateType.RUNNING, "claim-again")  # stale version


# ---- the layout follows the data's schema version -------------------------------------------


def test_a_new_table_is_stamped_and_an_old_one_keeps_its_layout_until_migrated(dynamodb):
    # Given a table with data from before META existed (version 1)
    DynamoRunStore(dynamodb, TABLE, history_inline=lambda: False).create_flow_run(a_run())
    backend = DynamoMigrationBackend(dynamodb, TABLE)
    guard = SchemaGuard(backend.guard_status, interval_seconds=0.0)
    store = DynamoRunStore(dynamodb, TABLE, history_inline=lambda: guard.data_version() >= 3)

    # When a run moves on, Then it is written the old way (older code may still run here)
    run = move(store, store.create_flow_run(a_run()), StateType.PENDING, "claim")
    assert guard.data_version() == 1 and len(partition(dynamodb, run.id)) == 4

    # When the operator migrates to 3, Then the next change is one write inside the item
    migrate(backend, to_version=3)
    assert guard.data_version() == 3 and backend.read_status().oldest_code == 3
    run = move(store, run, StateType.RUNNING, "start")
    assert len(partition(dynamodb, run.id)) == 4  # nothing more than before
    assert [s.type for s in store.list_state_history(run.id)][-1] is StateType.RUNNING


def test_a_new_empty_table_writes_todays_layout_from_the_first_run(dynamodb):
    guard = SchemaGuard(DynamoMigrationBackend(dynamodb, TABLE).guard_status)
    assert guard.data_version() == SCHEMA_VERSION  # stamped once, on the first look
    assert DynamoMigrationBackend(dynamodb, TABLE).read_status().oldest_code == SCHEMA_VERSION
    assert migrate(DynamoMigrationBackend(dynamodb, TABLE)).steps == []


# ---- finished task runs, packed -------------------------------------------------------------


def test_ten_finished_task_runs_are_one_item_and_list_like_single_ones(store, dynamodb):
    run = store.create_flow_run(a_run())
    records = [task(run.id, n) for n in range(10)]

    assert store.add_finished_task_runs(records) == 10
    task_items = [i for i in partition(dynamodb, run.id) if i["sk"]["S"].startswith("TASK#")]
    assert len(task_items) == 1 and len(dynamo_task_sheets.sheet_text(task_items[0])) < 10 * 400

    listed = store.list_task_runs(run.id, limit=100)
    assert listed.items == records and listed.next_cursor is None
    # a resent batch writes the same item again
    store.add_finished_task_runs(records)
    assert len([i for i in partition(dynamodb, run.id) if i["sk"]["S"].startswith("TASK#")]) == 1


def test_pages_walk_sheets_and_single_items_by_record(store):
    # Given task runs stored both ways: long ones one by one, short ones packed
    run = store.create_flow_run(a_run())
    singles = [task(run.id, n, StateType.RUNNING, version=2) for n in (0, 5, 11)]
    store.upsert_task_runs(singles)
    packed = [task(run.id, n) for n in (1, 2, 3, 4, 6, 7, 8, 9, 10)]
    store.add_finished_task_runs(packed)

    # When listed three at a time, Then every record comes once, no page is over its limit
    seen: list[TaskRun] = []
    cursor = None
    while True:
        page = store.list_task_runs(run.id, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(t.id for t in seen) == sorted(t.id for t in singles + packed)
    assert len(seen) == 12


def test_a_record_stored_both_ways_is_listed_once_at_its_highest_version(store):
    run = store.create_flow_run(a_run())
    store.upsert_task_runs([task(run.id, 1, StateType.RUNNING, version=2)])
    store.add_finished_task_runs([task(run.id, 1, StateType.COMPLETED, version=3),
                                  task(run.id, 2, StateType.RUNNING, version=1)])
    listed = store.list_task_runs(run.id, limit=10).items
    assert [(t.name, t.state.type) for t in listed] == [
        ("step-1", StateType.COMPLETED), ("step-2", StateType.RUNNING)]


def test_cursors_of_the_previous_release_still_resume_and_bad_ones_are_refused(store):
    run = store.create_flow_run(a_run())
    store.upsert_task_runs([task(run.id, n, version=1) for n in range(3)])
    old_cursor = dynamo_task_sheets.items.encode_cursor(
        "task-runs", {"pk": {"S": f"RUN#{run.id}"}, "sk": {"S": f"TASK#{task(run.id, 0).id}"}})
    assert [t.name for t in store.list_task_runs(run.id, limit=10, cursor=old_cursor).items] == [
        "step-1", "step-2"]
    with pytest.raises(BadRequest, match="invalid cursor"):
        store.list_task_runs(run.id, limit=10, cursor="bm90LWEtY3Vyc29y")


def test_sheets_split_by_size_and_keep_time_fields(store, dynamodb):
    run = store.create_flow_run(a_run())
    many = [task(run.id, n).model_copy(update={"end_time": BASE + timedelta(seconds=n)})
            for n in range(120)]
    store.add_finished_task_runs(many)
    sheets = [i for i in partition(dynamodb, run.id) if "~" in i["sk"]["S"]]
    assert len(sheets) > 1
    assert all(len(dynamo_task_sheets.sheet_text(i)) <= dynamo_task_sheets.TASK_SHEET_MAX_BYTES
               for i in sheets)
    first = store.list_task_runs(run.id, limit=100)
    rest = store.list_task_runs(run.id, limit=100, cursor=first.next_cursor)
    assert first.items + rest.items == many and rest.next_cursor is None

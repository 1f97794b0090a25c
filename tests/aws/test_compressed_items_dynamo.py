"""Schema 4 on DynamoDB (moto): a flow run's document and each sheet of finished task runs are
stored zlib-compressed (Binary), so they bill fewer write units; code of 4 reads the items of 3,
and writes the layout of 3 while the table's data is still at 3 (so a rollback works)."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.exceptions import SchemaTooNew
from sluice.models import FlowRun, State, StateType, TaskRun
from sluice_functions.adapters.aws import DynamoRunStore, dynamo_items, dynamo_task_sheets
from sluice_functions.adapters.aws.clients import AwsClients, build_aws_ports
from sluice_functions.adapters.records import UnreadableRecord
from sluice_functions.config import (
    COMPRESSED_ITEMS_SCHEMA,
    SCHEMA_VERSION_ATTRIBUTE,
    TABLE_PARTITION_KEY,
    ControlPlaneSettings,
)
from sluice_functions.migrations import check_understood
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate
from sluice_functions.ports import FlowRunFilter

REGION = "us-east-1"
TABLE = "sluice-compressed"
BASE = datetime(2026, 12, 1, tzinfo=UTC)


def store_at(dynamodb: Any, *, compressed: bool) -> DynamoRunStore:
    """The store writing the layout of schema 4 (`compressed`) or 3; schema 5's lean run
    documents are tests/aws/test_lean_run_documents_dynamo.py's."""
    return DynamoRunStore(dynamodb, TABLE, compressed_items=lambda: compressed,
                          lean_documents=lambda: False)


def a_run(**fields: Any) -> FlowRun:
    """A run as a deployment creates it (parameters, tags, a deployment id): ~1 KB of JSON."""
    return FlowRun(id=uuid.uuid4().hex, flow_name="nightly-etl", name="brave-otter",
                   deployment_id=uuid.uuid4().hex, pool="default",
                   parameters={"source": "s3://bucket/input", "batch": 500},
                   tags=["etl", "nightly"], created_by="deployment", created=BASE, updated=BASE,
                   state=State(type=StateType.SCHEDULED, name="Scheduled", scheduled_time=BASE,
                               timestamp=BASE),
                   scheduled_at=BASE, **fields)


def task(flow_run_id: str, n: int, state_type: StateType = StateType.COMPLETED,
         version: int = 3) -> TaskRun:
    return TaskRun(id=f"{n:04d}" + uuid.uuid4().hex[:28], flow_run_id=flow_run_id,
                   task_name="step", name=f"step-{n}", task_key="flows.step",
                   state=State(type=state_type, timestamp=BASE + timedelta(seconds=n)),
                   start_time=BASE, end_time=BASE + timedelta(seconds=n), run_count=1,
                   version=version)


def move(store: DynamoRunStore, run: FlowRun, state_type: StateType, transition: str,
         **fields: Any) -> FlowRun:
    return store.set_flow_run_state(run.model_copy(update={
        "state": State(type=state_type, timestamp=BASE), **fields}), transition)


def partition(dynamodb: Any, flow_run_id: str) -> list[dict]:
    return dynamodb.query(TableName=TABLE, KeyConditionExpression="#pk = :pk",
                          ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
                          ExpressionAttributeValues={":pk": {"S": f"RUN#{flow_run_id}"}},
                          ConsistentRead=True)["Items"]


def run_item(dynamodb: Any, flow_run_id: str) -> dict:
    return dynamodb.get_item(TableName=TABLE, Key=dynamo_items.run_key(flow_run_id),
                             ConsistentRead=True)["Item"]


def sheets(dynamodb: Any, flow_run_id: str) -> list[dict]:
    return [i for i in partition(dynamodb, flow_run_id)
            if dynamo_task_sheets.SHEET_MARK in i["sk"]["S"]]


# ---- flow runs ------------------------------------------------------------------------------


def test_a_run_is_stored_compressed_and_reads_back_through_every_path(
        dynamodb, item_size, write_units):
    # Given code writing schema 4
    store = store_at(dynamodb, compressed=True)

    # When a run is created, claimed, renewed and finished
    created = store.create_flow_run(a_run())
    item = run_item(dynamodb, created.id)
    claimed = move(store, created, StateType.PENDING, "claim", worker="w-1")
    renewed = store.update_flow_run(claimed.model_copy(update={"heartbeat_at": BASE}))
    done = move(store, renewed, StateType.COMPLETED, "end", message="ok")

    # Then its document is Binary zlib of the JSON, and one write unit at creation
    assert set(item[dynamo_items.DATA]) == {"B"}
    document = zlib.decompress(item[dynamo_items.DATA]["B"]).decode()
    assert document == created.model_dump_json(exclude_defaults=True)  # defaults left out
    assert FlowRun.model_validate_json(document) == created
    assert write_units(item) == 1
    # and every reader decodes it: by id, lists, history, look-up by name
    assert store.get_flow_run(done.id) == done
    assert [r.id for r in store.list_flow_runs(FlowRunFilter(), limit=10).items] == [done.id]
    assert [s.type for s in store.list_state_history(done.id)] == [
        StateType.SCHEDULED, StateType.PENDING, StateType.COMPLETED]
    assert [r.id for r in store.find_flow_runs("brave-otter", limit=5)] == [done.id]
    assert store.find_flow_runs("other-name", limit=5) == []
    # and the index attributes and inline history stay plain (conditions and indexes use them)
    final = run_item(dynamodb, done.id)
    assert final["state_type"] == {"S": "COMPLETED"} and "L" in final["states"]


def test_a_run_of_schema_3_is_read_and_rewritten_compressed_by_code_of_4(dynamodb):
    # Given a run written by code of schema 3 (a JSON string)
    old = store_at(dynamodb, compressed=False)
    run = move(old, old.create_flow_run(a_run()), StateType.PENDING, "claim")
    assert set(run_item(dynamodb, run.id)[dynamo_items.DATA]) == {"S"}

    # When code of 4 reads it and moves it on
    new = store_at(dynamodb, compressed=True)
    assert new.get_flow_run(run.id) == run
    assert [r.id for r in new.find_flow_runs("brave-otter", limit=5)] == [run.id]
    done = move(new, run, StateType.RUNNING, "start")

    # Then the same attribute now holds the compressed document: no stale string is left
    item = run_item(dynamodb, done.id)
    assert set(item[dynamo_items.DATA]) == {"B"}
    assert new.get_flow_run(done.id) == done and new.has_transition(done.id, "claim")


def test_a_damaged_compressed_document_is_skipped_by_lists_and_refused_by_id(dynamodb):
    store = store_at(dynamodb, compressed=True)
    kept, damaged = store.create_flow_run(a_run()), store.create_flow_run(a_run())
    item = run_item(dynamodb, damaged.id)
    item[dynamo_items.DATA] = {"B": b"not zlib at all"}
    dynamodb.put_item(TableName=TABLE, Item=item)

    assert [r.id for r in store.list_flow_runs(FlowRunFilter(), limit=10).items] == [kept.id]
    assert [r.id for r in store.find_flow_runs("brave-otter", limit=5)] == [kept.id]
    with pytest.raises(UnreadableRecord, match=f"RUN#{damaged.id} RUN cannot be read"):
        store.get_flow_run(damaged.id)


# ---- task sheets ----------------------------------------------------------------------------


def test_ten_short_tasks_are_one_sheet_of_one_write_unit(dynamodb, item_size, write_units):
    store = store_at(dynamodb, compressed=True)
    run = store.create_flow_run(a_run())
    records = [task(run.id, n) for n in range(10)]

    assert store.add_finished_task_runs(records) == 10

    [sheet] = sheets(dynamodb, run.id)
    assert dynamo_items.DATA not in sheet
    assert set(sheet[dynamo_task_sheets.COMPRESSED_RECORDS]) == {"B"}
    assert write_units(sheet) == 1
    assert store.list_task_runs(run.id, limit=100).items == records


def test_a_resent_batch_writes_the_same_sheet_again(dynamodb):
    # Given a batch stored once at schema 4
    store = store_at(dynamodb, compressed=True)
    run = store.create_flow_run(a_run())
    records = [task(run.id, n) for n in range(10)]
    store.add_finished_task_runs(records)
    [first] = sheets(dynamodb, run.id)

    # When it arrives again (a lost answer), Then it is the same item with the same content
    store.add_finished_task_runs(list(reversed(records)))
    [again] = sheets(dynamodb, run.id)
    assert again["sk"] == first["sk"]
    assert dynamo_task_sheets.sheet_text(again) == dynamo_task_sheets.sheet_text(first)
    assert store.list_task_runs(run.id, limit=100).items == records


def test_a_batch_sent_at_3_and_resent_at_4_keeps_one_sheet(dynamodb):
    # Given a batch stored by code writing schema 3
    run = store_at(dynamodb, compressed=False).create_flow_run(a_run())
    records = [task(run.id, n) for n in range(10)]
    store_at(dynamodb, compressed=False).add_finished_task_runs(records)
    [old] = sheets(dynamodb, run.id)

    # When it is resent after the migration, Then the same key is overwritten in the new layout
    store = store_at(dynamodb, compressed=True)
    store.add_finished_task_runs(records)
    [new] = sheets(dynamodb, run.id)
    assert new["sk"] == old["sk"] and dynamo_items.DATA not in new
    assert store.list_task_runs(run.id, limit=100).items == records


def test_pages_walk_compressed_sheets_old_sheets_and_single_items_by_record(dynamodb):
    # Given task runs stored three ways: single items, a sheet of 3, a sheet of 4
    run = store_at(dynamodb, compressed=True).create_flow_run(a_run())
    singles = [task(run.id, n, StateType.RUNNING, version=2) for n in (0, 5, 11)]
    store_at(dynamodb, compressed=True).upsert_task_runs(singles)
    old_sheet = [task(run.id, n) for n in (1, 2, 3, 4)]
    store_at(dynamodb, compressed=False).add_finished_task_runs(old_sheet)
    new_sheet = [task(run.id, n) for n in (6, 7, 8, 9, 10)]
    store = store_at(dynamodb, compressed=True)
    store.add_finished_task_runs(new_sheet)

    # When listed three at a time, Then every record comes once, in id order
    seen: list[TaskRun] = []
    cursor = None
    while True:
        page = store.list_task_runs(run.id, limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(singles + old_sheet + new_sheet, key=lambda t: t.id)


def test_a_record_in_a_compressed_sheet_and_a_single_item_lists_at_its_highest_version(dynamodb):
    store = store_at(dynamodb, compressed=True)
    run = store.create_flow_run(a_run())
    running = task(run.id, 1, StateType.RUNNING, version=2)
    store.upsert_task_runs([running])
    store.add_finished_task_runs([running.model_copy(update={
        "state": State(type=StateType.COMPLETED, timestamp=BASE), "version": 3})])

    [listed] = store.list_task_runs(run.id, limit=10).items
    assert listed.state.type is StateType.COMPLETED and listed.version == 3


def test_a_large_batch_splits_by_uncompressed_size_and_compresses_each_sheet(dynamodb, item_size):
    store = store_at(dynamodb, compressed=True)
    run = store.create_flow_run(a_run())
    many = [task(run.id, n) for n in range(500)]

    store.add_finished_task_runs(many)

    found = sheets(dynamodb, run.id)
    assert len(found) > 1
    assert all(len(dynamo_task_sheets.sheet_text(i))
               <= dynamo_task_sheets.COMPRESSED_SHEET_MAX_JSON_BYTES for i in found)
    assert all(item_size(i) < 4 * 1024 for i in found)
    first = store.list_task_runs(run.id, limit=200)
    rest: list[TaskRun] = []
    cursor = first.next_cursor
    while cursor is not None:
        page = store.list_task_runs(run.id, limit=200, cursor=cursor)
        rest += page.items
        cursor = page.next_cursor
    assert first.items + rest == sorted(many, key=lambda t: t.id)


# ---- the layout follows the data's schema version -------------------------------------------


def test_at_data_version_3_code_of_4_writes_the_old_layout_until_migrated(
        dynamodb, data_at, gated_store):
    # Given a table at 3 and the store wired to its version
    store_at(dynamodb, compressed=False).create_flow_run(a_run())
    backend = data_at(3)
    guard = SchemaGuard(backend.guard_status, interval_seconds=0.0)
    store = gated_store(guard)

    # When a run and its tasks are written, Then both are in the layout code of 3 reads
    run = move(store, store.create_flow_run(a_run()), StateType.PENDING, "claim")
    store.add_finished_task_runs([task(run.id, n) for n in range(3)])
    assert guard.data_version() == 3 and backend.read_status().oldest_code == 3
    assert set(run_item(dynamodb, run.id)[dynamo_items.DATA]) == {"S"}
    [sheet] = sheets(dynamodb, run.id)
    assert set(sheet[dynamo_items.DATA]) == {"S"}
    assert dynamo_task_sheets.COMPRESSED_RECORDS not in sheet

    # When the operator migrates, Then the next writes are compressed and the old items read
    migrate(backend, to_version=4)
    assert guard.data_version() == COMPRESSED_ITEMS_SCHEMA == 4
    done = move(store, run, StateType.RUNNING, "start")
    store.add_finished_task_runs([task(run.id, n) for n in range(3, 6)])
    assert set(run_item(dynamodb, done.id)[dynamo_items.DATA]) == {"B"}
    assert len(store.list_task_runs(run.id, limit=10).items) == 6


def test_migration_3_to_4_only_stamps_and_refuses_code_of_3_after_it(dynamodb, data_at):
    # Given a table at 3 with a run and a sheet in the layout of 3
    store_at(dynamodb, compressed=False).create_flow_run(a_run())
    backend = data_at(3)
    old = store_at(dynamodb, compressed=False)
    run = old.create_flow_run(a_run())
    old.add_finished_task_runs([task(run.id, n) for n in range(3)])
    before = {(i["pk"]["S"], i["sk"]["S"]): i for i in dynamodb.scan(TableName=TABLE)["Items"]}

    # When migrated to 4 (twice: idempotent)
    report = migrate(backend, to_version=4)
    assert [(s.from_version, s.to_version) for s in report.steps] == [(3, 4)]
    assert migrate(backend, to_version=4).steps == []

    # Then every data item is stamped 4 and otherwise unchanged
    status = backend.read_status()
    assert status.version == 4 and status.oldest_code == 4
    for item in dynamodb.scan(TableName=TABLE)["Items"]:
        key = (item["pk"]["S"], item["sk"]["S"])
        if key[0] == "META":
            continue
        # (items this code wrote carry its own, newer stamp: a step leaves those alone)
        stamp = before[key][SCHEMA_VERSION_ATTRIBUTE]["N"]
        assert item[SCHEMA_VERSION_ATTRIBUTE] == {"N": "4" if stamp == "3" else stamp}
        assert {k: v for k, v in item.items() if k != SCHEMA_VERSION_ATTRIBUTE} == {
            k: v for k, v in before[key].items() if k != SCHEMA_VERSION_ATTRIBUTE}
    # and code that understands only 3 is refused, with the fix in the message
    with pytest.raises(SchemaTooNew, match="upgrade sluice"):
        check_understood(status, understood=3)


def test_the_composition_root_writes_compressed_items_on_a_new_table(dynamodb, write_units):
    # Given the Lambda's ports on a new (empty) table: stamped at this code's version
    ports = build_aws_ports(ControlPlaneSettings(table_name=TABLE),
                            AwsClients(dynamodb=dynamodb, sqs=None, logs=None))

    run = ports.store.create_flow_run(a_run())
    ports.store.add_finished_task_runs([task(run.id, n) for n in range(10)])

    assert set(run_item(dynamodb, run.id)[dynamo_items.DATA]) == {"B"}
    [sheet] = sheets(dynamodb, run.id)
    assert dynamo_task_sheets.COMPRESSED_RECORDS in sheet and write_units(sheet) == 1

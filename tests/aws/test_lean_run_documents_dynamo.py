"""Schema 5 on DynamoDB (moto): a flow run's compressed document leaves out what its item holds
anyway (the id in the key; version, flow name, deployment and pool as attributes; the state as
the newest inline history entry) and is deflated with a preset dictionary, so a short run's
item stays within one write unit after its final state. Every read path puts the fields back;
code of 5 reads items of 4 and writes their layout until the data is migrated."""

from __future__ import annotations

import json
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.exceptions import Conflict, SchemaTooNew
from sluice.models import FlowRun, State, StateType
from sluice_functions.adapters.aws import DynamoRunStore, dynamo_items
from sluice_functions.adapters.aws import dynamo_run_item as run_item
from sluice_functions.adapters.records import UnreadableRecord
from sluice_functions.config import (
    LEAN_RUN_DOCUMENT_SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ATTRIBUTE,
)
from sluice_functions.migrations import check_understood
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate
from sluice_functions.ports import FlowRunFilter

REGION = "us-east-1"
TABLE = "sluice-lean"
BASE = datetime(2026, 12, 5, 6, 35, 32, 72634, tzinfo=UTC)
#: Fields a lean document leaves out whatever the write.
LEFT_OUT = {"id", "version", "flow_name", "deployment_id", "pool"}


def a_run(**fields: Any) -> FlowRun:
    """A short deployment run as `bench/aws_requests.py` measures it."""
    defaults: dict[str, Any] = dict(
        id=uuid.uuid4().hex, flow_name="ten-tasks", name="tidy-badger",
        deployment_id=uuid.uuid4().hex, pool="default", parameters={"tasks": 10},
        created_by="arn:aws:iam::000000000000:user/bench", created=BASE, updated=BASE,
        enqueued_at=BASE, scheduled_at=BASE,
        state=State(type=StateType.SCHEDULED, scheduled_time=BASE, timestamp=BASE))
    return FlowRun(**{**defaults, **fields})


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def claim(store: DynamoRunStore, run: FlowRun) -> FlowRun:
    """Scheduled -> Pending -> Running in one write, as the claim does."""
    pending = State(type=StateType.PENDING, timestamp=at(0.02), message="claimed by bench")
    return store.set_flow_run_state(run.model_copy(update={
        "state": State(type=StateType.RUNNING, timestamp=at(0.021)), "worker": "bench",
        "start_time": at(0.021), "heartbeat_at": at(0.021), "run_count": 1,
        "lease": uuid.uuid4().hex, "claim_id": str(uuid.uuid4()),
        "lease_session": uuid.uuid4().hex, "lease_expires_at": at(90.021),
        "updated": at(0.021)}), None, passed=[pending])


def finish(store: DynamoRunStore, run: FlowRun, transition_id: str = "22e1c89815404dd2",
           state_type: StateType = StateType.COMPLETED) -> FlowRun:
    return store.set_flow_run_state(run.model_copy(update={
        "state": State(type=state_type, timestamp=at(0.15)), "end_time": at(0.156),
        "updated": at(0.156)}), transition_id)


def raw_item(dynamodb: Any, flow_run_id: str) -> dict:
    return dynamodb.get_item(TableName=TABLE, Key=dynamo_items.run_key(flow_run_id),
                             ConsistentRead=True)["Item"]


def stored_document(item: dict) -> dict:
    """The JSON the item's `data` holds, as written (not filled in)."""
    return json.loads(dynamo_items.data_of(item))
def same(a: FlowRun, b: FlowRun) -> bool:
    return a.model_dump(mode="json") == b.model_dump(mode="json")


# ---- what is stored, and what reads back ---------------------------------------------------------


def test_a_short_run_stays_one_write_unit_and_every_read_path_restores_it(dynamodb, write_units):
    # Given code writing schema 5 (the store's default)
    store = DynamoRunStore(dynamodb, TABLE)

    # When a short run is created, claimed and finished
    created = store.create_flow_run(a_run())
    after_create = raw_item(dynamodb, created.id)
    claimed = claim(store, created)
    after_claim = raw_item(dynamodb, created.id)
    done = finish(store, claimed)
    after_final = raw_item(dynamodb, created.id)

    # Then each document leaves out the key, the attributes and the state (the newest entry)
    for item in (after_create, after_claim, after_final):
        assert not (LEFT_OUT | {"state"}) & set(stored_document(item))
        assert write_units(item) == 1
    assert [json.loads(e["S"])["s"]["type"] for e in after_final[run_item.HISTORY]["L"]] == [
        "SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    assert done.version == 4 and done.state.type is StateType.COMPLETED

    # and every reader gets the whole run back, as the write returned it
    assert same(store.get_flow_run(created.id), done)
    for flt in (FlowRunFilter(flow_name="ten-tasks"), FlowRunFilter(pool="default"),
                FlowRunFilter(deployment_id=created.deployment_id),
                FlowRunFilter(state_types=frozenset({StateType.COMPLETED})), FlowRunFilter()):
        [listed] = store.list_flow_runs(flt, limit=10).items
        assert same(listed, done)
    [by_state] = store.list_flow_runs_by_state(StateType.COMPLETED, limit=10).items
    assert same(by_state, done)
    assert [s.type for s in store.list_state_history(created.id)] == [
        StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]


def test_an_update_without_a_new_state_keeps_the_state_in_the_document(dynamodb):
    # Given a claimed run
    store = DynamoRunStore(dynamodb, TABLE)
    claimed = claim(store, store.create_flow_run(a_run()))

    # When its lease is renewed (no state change: the inline history stays as it is)
    renewed = store.update_flow_run(claimed.model_copy(update={"heartbeat_at": at(30)}))

    # Then the document carries the state, and the run reads back whole
    document = stored_document(raw_item(dynamodb, claimed.id))
    assert document["state"]["type"] == "RUNNING" and not LEFT_OUT & set(document)
    assert same(store.get_flow_run(claimed.id), renewed) and renewed.version == claimed.version + 1

    # and the next state change leaves it out again
    done = finish(store, renewed)
    assert "state" not in stored_document(raw_item(dynamodb, claimed.id))
    assert same(store.get_flow_run(claimed.id), done)


def test_a_run_without_deployment_or_pool_and_a_long_history_read_back(dynamodb):
    # Given a run of a flow called directly (no deployment, no pool)
    store = DynamoRunStore(dynamodb, TABLE)
    run = store.create_flow_run(a_run(deployment_id=None, pool=None))

    # When it changes state more often than the inline history holds (entries move out)
    for n in range(run_item.INLINE_HISTORY_MAX_ENTRIES + 5):
        state_type = StateType.RUNNING if n % 2 else StateType.PENDING
        run = store.set_flow_run_state(run.model_copy(update={
            "state": State(type=state_type, timestamp=at(n + 1), message=f"step {n}")}),
            f"t-{n}")

    # Then it reads back whole, its history complete, without the attributes it never had
    item = raw_item(dynamodb, run.id)
    assert dynamo_items.RUN_POOL not in item and dynamo_items.RUN_DEPLOYMENT_ID not in item
    got = store.get_flow_run(run.id)
    assert same(got, run) and got.pool is None and got.deployment_id is None
    assert len(store.list_state_history(run.id)) == run_item.INLINE_HISTORY_MAX_ENTRIES + 6
    assert store.has_transition(run.id, "t-0") and store.has_transition(run.id, "t-28")


def test_a_retried_write_that_had_landed_is_a_success_and_another_is_a_conflict(dynamodb):
    # Given a claimed run and its final state written once
    store = DynamoRunStore(dynamodb, TABLE)
    claimed = claim(store, store.create_flow_run(a_run()))
    done = store.set_flow_run_state(claimed.model_copy(update={
        "state": State(type=StateType.COMPLETED, timestamp=at(1)), "updated": at(1)}), None)

    # When the same write comes again (botocore retrying a request whose first attempt landed)
    again = store.set_flow_run_state(claimed.model_copy(update={
        "state": State(type=StateType.COMPLETED, timestamp=at(1)), "updated": at(1)}), None)

    # Then it is the same success; a different write from the same version is a conflict,
    # even though its document (without state and version) would be the same
    assert same(again, done)
    with pytest.raises(Conflict, match="changed concurrently"):
        store.set_flow_run_state(claimed.model_copy(update={
            "state": State(type=StateType.FAILED, timestamp=at(1)), "updated": at(1)}), None)


def test_a_lean_document_without_any_history_entry_is_refused_as_damaged(dynamodb):
    # Given a run whose inline history was lost (a hand edit)
    store = DynamoRunStore(dynamodb, TABLE)
    run = store.create_flow_run(a_run())
    dynamodb.update_item(TableName=TABLE, Key=dynamo_items.run_key(run.id),
                         UpdateExpression="REMOVE #h",
                         ExpressionAttributeNames={"#h": run_item.HISTORY})

    # When it is read, Then the read names the run and the missing state
    with pytest.raises(UnreadableRecord, match=f"{run.id}.*state"):
        store.get_flow_run(run.id)


def test_a_lean_run_without_its_version_attribute_is_skipped_by_lists_and_refused_by_id(
        dynamodb):
    # Given two runs, one of which lost its version attribute (a hand edit)
    store = DynamoRunStore(dynamodb, TABLE)
    kept = store.create_flow_run(a_run())
    damaged = store.create_flow_run(a_run())
    dynamodb.update_item(TableName=TABLE, Key=dynamo_items.run_key(damaged.id),
                         UpdateExpression="REMOVE #v",
                         ExpressionAttributeNames={"#v": dynamo_items.VERSION})

    # Then a listing skips it, and a read by id names it
    assert [r.id for r in store.list_flow_runs(FlowRunFilter(), limit=10).items] == [kept.id]
    with pytest.raises(UnreadableRecord, match=f"{damaged.id}.*damaged"):
        store.get_flow_run(damaged.id)


# ---- the preset dictionary -----------------------------------------------------------------------


def test_documents_are_deflated_with_the_pinned_dictionary(dynamodb):
    # Given a run written at schema 5
    store = DynamoRunStore(dynamodb, TABLE)
    run = claim(store, store.create_flow_run(a_run()))
    data = bytes(raw_item(dynamodb, run.id)[dynamo_items.DATA]["B"])

    # Then the stream needs the dictionary (plain zlib cannot read it), and the dictionary is
    # the one stored items depend on: editing its bytes would make every such item unreadable
    with pytest.raises(zlib.error):
        zlib.decompress(data)
    inflater = zlib.decompressobj(zdict=dynamo_items.RUN_DOCUMENT_DICTIONARY)
    assert json.loads(inflater.decompress(data))["worker"] == "bench"
    assert zlib.adler32(dynamo_items.RUN_DOCUMENT_DICTIONARY) == 0x5041B4D1
    # and it pays: the same JSON without it is at least 60 bytes longer
    plain = zlib.compress(dynamo_items.data_of(raw_item(dynamodb, run.id)).encode(),
                          dynamo_items.COMPRESSION_LEVEL)
    assert len(plain) - len(data) >= 60


# ---- the layout follows the data's schema version ------------------------------------------------


def whole_documents(dynamodb: Any) -> DynamoRunStore:
    """The store writing the layout of schema 4 (what the previous release wrote)."""
    return DynamoRunStore(dynamodb, TABLE, lean_documents=lambda: False)


def test_at_data_version_4_code_of_5_writes_whole_documents_until_migrated(
        dynamodb, data_at, gated_store):
    # Given a table at 4 and the store wired to its version
    whole_documents(dynamodb).create_flow_run(a_run())
    backend = data_at(4)
    guard = SchemaGuard(backend.guard_status, interval_seconds=0.0)
    store = gated_store(guard)

    # When a run is created and claimed, Then its document is whole (code of 4 reads it)
    run = claim(store, store.create_flow_run(a_run()))
    document = json.loads(zlib.decompress(raw_item(dynamodb, run.id)[dynamo_items.DATA]["B"]))
    assert guard.data_version() == 4 and LEFT_OUT | {"state"} <= set(document)

    # When the operator migrates, Then the next write is lean and the whole one still reads
    migrate(backend)
    assert guard.data_version() == SCHEMA_VERSION == LEAN_RUN_DOCUMENT_SCHEMA == 5
    assert same(store.get_flow_run(run.id), run)
    done = finish(store, run)
    assert not (LEFT_OUT | {"state"}) & set(stored_document(raw_item(dynamodb, run.id)))
    assert same(store.get_flow_run(run.id), done)


def test_migration_4_to_5_only_stamps_and_refuses_code_of_4_after_it(dynamodb, data_at):
    # Given a table at 4 with a run in the layout of 4
    whole_documents(dynamodb).create_flow_run(a_run())
    backend = data_at(4)
    before = {(i["pk"]["S"], i["sk"]["S"]): i for i in dynamodb.scan(TableName=TABLE)["Items"]}

    # When migrated (twice: idempotent)
    report = migrate(backend)
    assert [(s.from_version, s.to_version) for s in report.steps] == [(4, 5)]
    assert migrate(backend).steps == []

    # Then every data item is stamped 5 and otherwise unchanged, and code of 4 is refused
    status = backend.read_status()
    assert status.version == 5 and status.oldest_code == 5
    for item in dynamodb.scan(TableName=TABLE)["Items"]:
        key = (item["pk"]["S"], item["sk"]["S"])
        if key[0] == "META":
            continue
        assert item[SCHEMA_VERSION_ATTRIBUTE] == {"N": "5"}
        assert {k: v for k, v in item.items() if k != SCHEMA_VERSION_ATTRIBUTE} == {
            k: v for k, v in before[key].items() if k != SCHEMA_VERSION_ATTRIBUTE}
    with pytest.raises(SchemaTooNew, match="upgrade sluice"):
        check_understood(status, understood=4)

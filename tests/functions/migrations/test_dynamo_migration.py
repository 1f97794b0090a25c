"""Migration 1 -> 2 on DynamoDB (moto): from the item layout the release before wrote (no `sv`)
to this one, idempotent, resumable after a crash, safe beside a concurrent writer."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
import moto
import pytest

from sluice.exceptions import SchemaTooNew
from sluice.models import Deployment, FlowRun, Pool, State, StateType, TaskRun, Worker
from sluice_functions.adapters.aws import DynamoRunStore
from sluice_functions.config import (
    META_PARTITION,
    RUN_POOL,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ATTRIBUTE,
    table_key_schema,
)
from sluice_functions.migrations import check_understood
from sluice_functions.migrations.dynamo import META_KEY, DynamoMigrationBackend
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate
from sluice_functions.ports import FlowRunFilter

REGION = "us-east-1"
TABLE = "sluice-migrations"
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
RUNS = 12


class InjectedCrash(Exception):
    """Stands for a crash (killed process, lost connection) between two pages."""


@pytest.fixture
def client():
    with moto.mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=TABLE, **table_key_schema())
        yield dynamodb


def all_items(client) -> list[dict]:
    items, params = [], {"TableName": TABLE}
    while True:
        page = client.scan(**params)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def write_version_1_data(client) -> None:
    """Runs, history, task runs, a deployment, a pool and a worker written by the store, then
    stripped of `sv`: exactly the layout of the release before versions (nothing else differs).
    One run also lost its `pool` index attribute, as an item written by hand would have."""
    # Documents whole, as that release wrote them: the 1 -> 2 step re-derives attributes from them.
    store = DynamoRunStore(client, TABLE, lean_documents=lambda: False)
    store.upsert_pool(Pool(name="default"))
    store.upsert_worker(Worker(pool="default", name="w1", host="h"))
    store.upsert_deployment(Deployment(id="dep-1", flow_name="etl", name="nightly",
                                      entrypoint="flows.py:etl"))
    for i in range(RUNS):
        run = store.create_flow_run(FlowRun(
            id=f"fr-{i:03d}", flow_name="etl", pool="default", deployment_id="dep-1",
            state=State(type=StateType.SCHEDULED, scheduled_time=T0), scheduled_at=T0))
        store.upsert_task_runs([TaskRun(id=f"tr-{i}", flow_run_id=run.id, task_key="t",
                                        task_name="t", name="t-0",
                                        state=State(type=StateType.COMPLETED))])
    for item in all_items(client):
        key = {"pk": item["pk"], "sk": item["sk"]}
        remove = "REMOVE sv" + (", #pool" if item["pk"]["S"] == "RUN#fr-003"
                                and item["sk"]["S"] == "RUN" else "")
        client.update_item(TableName=TABLE, Key=key, UpdateExpression=remove,
                           **({"ExpressionAttributeNames": {"#pool": RUN_POOL}}
                              if "#pool" in remove else {}))


def data_items(client) -> list[dict]:
    return [i for i in all_items(client) if i["pk"]["S"] != META_PARTITION]


def test_version_1_data_is_migrated_to_version_2_and_a_rerun_changes_nothing(client):
    # Given a table as the previous release left it
    write_version_1_data(client)
    backend = DynamoMigrationBackend(client, TABLE)
    assert backend.read_status().version == 1
    assert all(SCHEMA_VERSION_ATTRIBUTE not in i for i in data_items(client))
    store = DynamoRunStore(client, TABLE)
    assert len(store.list_flow_runs(FlowRunFilter(pool="default"), limit=100).items) == RUNS - 1

    # When it is migrated, three items a page
    report = migrate(backend, page_size=3, to_version=2)

    # Then every item carries sv = 2, the repaired run is listed again, and META says 2
    items = data_items(client)
    assert {i[SCHEMA_VERSION_ATTRIBUTE]["N"] for i in items} == {"2"}
    assert len(store.list_flow_runs(FlowRunFilter(pool="default"), limit=100).items) == RUNS
    assert report.start_version == 1 and report.end_version == 2
    assert report.steps[0].changed == len(items) and report.steps[0].scanned == len(items)
    status = backend.read_status()
    assert (status.version, status.migrating_to, status.checkpoint) == (2, None, None)

    # When it runs again, Then it has nothing to do and no item changes
    before = sorted(map(repr, all_items(client)))
    again = migrate(backend, page_size=3, to_version=2)
    assert again.steps == [] and sorted(map(repr, all_items(client))) == before


def test_a_dry_run_counts_and_writes_nothing(client):
    write_version_1_data(client)
    before = sorted(map(repr, all_items(client)))

    report = migrate(DynamoMigrationBackend(client, TABLE), dry_run=True, page_size=5)

    assert report.steps[0].changed == len(before) and report.end_version == 1
    assert sorted(map(repr, all_items(client))) == before


def test_a_run_interrupted_after_k_pages_resumes_from_its_checkpoint(client):
    # Given a migration that crashes after its second page
    write_version_1_data(client)
    total = len(all_items(client))
    backend = DynamoMigrationBackend(client, TABLE)

    def crash_after_two_pages(step, page):
        if step.pages == 2:
            raise InjectedCrash

    with pytest.raises(InjectedCrash):
        migrate(backend, page_size=4, on_page=crash_after_two_pages, to_version=2)

    # Then META says where it stopped, and the data is still served as version 1
    stopped = backend.read_status()
    assert (stopped.version, stopped.migrating_to) == (1, 2)
    assert stopped.checkpoint is not None
    done = [i for i in data_items(client) if SCHEMA_VERSION_ATTRIBUTE in i]
    # two pages of four scanned items (the META item, if met, is not data)
    assert stopped.scanned == len(done) and 7 <= len(done) <= 8

    # When it runs again, Then it continues after the checkpoint and finishes
    pages_seen: list[int] = []
    report = migrate(backend, page_size=4, to_version=2,
                     on_page=lambda step, page: pages_seen.append(page.scanned))
    assert report.steps[0].resumed
    assert sum(pages_seen) == total - len(done)  # the items done were not read again
    assert report.steps[0].scanned == total and report.steps[0].changed == total
    assert all(i[SCHEMA_VERSION_ATTRIBUTE]["N"] == "2" for i in data_items(client))
    assert backend.read_status().version == 2


def test_an_item_rewritten_by_the_new_code_meanwhile_is_not_migrated_twice(client):
    # Given version 1 data and a page the migration read before a writer of this release
    write_version_1_data(client)
    backend = DynamoMigrationBackend(client, TABLE)
    store = DynamoRunStore(client, TABLE)
    step_pages: list[int] = []

    def writer_between_pages(step, page):
        step_pages.append(page.scanned)
        if len(step_pages) == 1:  # the new code writes a run the scan has not reached yet
            run = store.get_flow_run("fr-011")
            store.update_flow_run(run.model_copy(update={"tags": ["fresh"]}))

    # When the migration runs, Then the fresh write is kept (its document was not replaced)
    report = migrate(backend, page_size=5, on_page=writer_between_pages, to_version=2)
    assert store.get_flow_run("fr-011").tags == ["fresh"]
    assert report.steps[0].changed == len(data_items(client)) - 1


def test_code_refuses_data_a_newer_release_migrated_beyond_it(client):
    # Given META written by a release whose migration older code cannot read
    client.put_item(TableName=TABLE, Item={**META_KEY, "schema_version": {"N": "3"},
                                           "oldest_code": {"N": "3"}})
    guard = SchemaGuard(DynamoMigrationBackend(client, TABLE).guard_status, understood=2)

    # When the API checks, Then it answers 503 naming both versions and the fix
    with pytest.raises(SchemaTooNew) as refused:
        guard.check()
    assert refused.value.status_code == 503
    assert "the table is at schema 3, this control plane understands up to 2: upgrade sluice" \
        in refused.value.message
    # and migrate refuses to run on it too
    with pytest.raises(ValueError, match="only go forward"):
        migrate(DynamoMigrationBackend(client, TABLE), to_version=2)


def test_additive_newer_data_stays_usable_by_the_previous_release(client):
    # Given data at 3 that code of 2 can still read (an additive step): rollback stays safe
    client.put_item(TableName=TABLE, Item={**META_KEY, "schema_version": {"N": "3"},
                                           "oldest_code": {"N": "1"}})
    check_understood(DynamoMigrationBackend(client, TABLE).guard_status(), understood=2)


def test_a_new_empty_table_is_already_at_this_version(client):
    assert DynamoMigrationBackend(client, TABLE).read_status().version == SCHEMA_VERSION
    assert migrate(DynamoMigrationBackend(client, TABLE)).steps == []

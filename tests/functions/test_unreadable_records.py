"""A stored record that no longer validates as its model (written by another version, by hand,
or damaged) is skipped by the lists the ticks and list routes read, with a log line naming it,
and refused by name when read by id (409 `unreadable_record`); a write never stores a record
that would not read back. Both store adapters: SQLite, and DynamoDB under moto."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from sluice.exceptions import ValidationError
from sluice.models import Deployment, FlowRun, State, StateType
from sluice_functions.adapters.aws import DynamoRunStore, dynamo_items
from sluice_functions.adapters.records import UnreadableRecord
from sluice_functions.adapters.sqlite import SqliteRunStore
from sluice_functions.config import table_key_schema
from sluice_functions.ports import FlowRunFilter

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
TABLE = "sluice-test"
#: Replaces fields of a stored run's JSON document: (store, run id, fields).
Corrupt = Callable[[Any, str, dict[str, Any]], None]


def corrupt_sqlite(store: SqliteRunStore, run_id: str, fields: dict[str, Any]) -> None:
    with store._db.write() as conn:
        doc = json.loads(conn.execute("SELECT doc FROM flow_runs WHERE id = ?",
                                      (run_id,)).fetchone()["doc"])
        conn.execute("UPDATE flow_runs SET doc = ? WHERE id = ?",
                     (json.dumps({**doc, **fields}), run_id))


def corrupt_dynamo(store: DynamoRunStore, run_id: str, fields: dict[str, Any]) -> None:
    client = store._table._client
    item = client.get_item(TableName=TABLE, Key=dynamo_items.run_key(run_id))["Item"]
    doc = json.loads(dynamo_items.data_of(item))  # either layout; written back as a string
    item[dynamo_items.DATA] = {"S": json.dumps({**doc, **fields})}
    client.put_item(TableName=TABLE, Item=item)


@pytest.fixture(params=["sqlite", "aws"])
def adapter(request, tmp_path: Path) -> Iterator[tuple[Any, Corrupt]]:
    if request.param == "sqlite":
        store = SqliteRunStore(tmp_path / "store.db")
        yield store, corrupt_sqlite
        store.close()
        return
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName=TABLE, **table_key_schema())
        yield DynamoRunStore(client, TABLE), corrupt_dynamo


def a_run(run_id: str, **fields: Any) -> FlowRun:
    values = {"id": run_id, "flow_name": "etl", "pool": "default", "scheduled_at": T0,
              "state": State(type=StateType.RUNNING, timestamp=T0)}
    return FlowRun(**{**values, **fields})


def test_lists_skip_an_unreadable_run_and_reading_it_names_the_problem(adapter, caplog):
    store, corrupt = adapter
    # Given two runs, one of which no longer validates as a FlowRun,
    for run_id in ("bad", "good"):
        store.create_flow_run(a_run(run_id))
    corrupt(store, "bad", {"run_count": "many"})
    # When the lists a tick reads are read, Then the other run is listed and the bad one logged,
    with caplog.at_level(logging.ERROR):
        by_state = store.list_flow_runs_by_state(StateType.RUNNING, limit=10).items
        listed = store.list_flow_runs(FlowRunFilter(), limit=10).items
    assert [r.id for r in by_state] == ["good"] and [r.id for r in listed] == ["good"]
    assert any("bad" in r.getMessage() and "run_count" in r.getMessage() for r in caplog.records)
    # and reading it by id is a 409 naming the record and the field.
    with pytest.raises(UnreadableRecord) as info:
        store.get_flow_run("bad")
    assert info.value.status_code == 409 and "bad" in info.value.message
    assert "run_count" in info.value.message


def test_a_write_that_would_not_read_back_is_refused_before_anything_is_stored(adapter):
    store, _ = adapter
    run = FlowRun.model_construct(**{**a_run("r").__dict__, "run_count": None})
    with pytest.raises(ValidationError, match="would not read back"):
        store.create_flow_run(run)
    assert store.list_flow_runs(FlowRunFilter(), limit=10).items == []


def test_an_unreadable_deployment_is_skipped_and_a_new_deploy_replaces_it(adapter):
    store, _ = adapter
    deployment = Deployment(id="d1", flow_name="etl", name="nightly", entrypoint="f.py:f")
    store.upsert_deployment(deployment)
    other = store.upsert_deployment(deployment.model_copy(update={"id": "d2", "name": "other"}))
    broken = json.dumps({"id": "d1", "flow_name": "etl", "name": "nightly", "pool": 7})
    if isinstance(store, SqliteRunStore):
        with store._db.write() as conn:
            conn.execute("UPDATE deployments SET doc = ? WHERE id = 'd1'", (broken,))
    else:
        client = store._table._client
        for key in (dynamo_items.deployment_key("d1"),
                    dynamo_items.deployment_name_key("etl", "nightly")):
            item = client.get_item(TableName=TABLE, Key=key)["Item"]
            item[dynamo_items.DATA] = {"S": broken}
            client.put_item(TableName=TABLE, Item=item)
    assert store.list_deployments(limit=10).items == [other]
    with pytest.raises(UnreadableRecord):
        store.get_deployment("d1")
    replaced = store.upsert_deployment(deployment.model_copy(update={"id": "new"}))
    assert replaced.id == "d1" and store.get_deployment("d1").pool == "default"

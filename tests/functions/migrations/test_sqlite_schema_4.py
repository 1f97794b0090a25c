"""Schemas 4 and 5 on the embedded server's SQLite store: the layout does not change there
(documents are text in their own column), so migrations 3 -> 4 and 4 -> 5 only move the
version; `sluice server start` serves a data directory of an earlier release (at 3) and a new
one alike."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import httpx
import pytest

from sluice.exceptions import SchemaTooNew
from sluice.models import FlowRun, State, StateType
from sluice_functions.adapters.sqlite import SqliteRunStore
from sluice_functions.config import (
    COMPRESSED_ITEMS_SCHEMA,
    LEAN_RUN_DOCUMENT_SCHEMA,
    SCHEMA_VERSION,
)
from sluice_functions.embedded import EmbeddedServer
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate
from sluice_functions.migrations.sqlite import SqliteMigrationBackend
from sluice_functions.migrations.steps import steps_between

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
RUNS = 3


def user_version(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def data_dir_at_3(tmp_path):
    """A data directory the previous release left: store.db at schema 3, older code allowed."""
    data_dir = tmp_path / "server"
    with SqliteRunStore(data_dir / "store.db") as store:
        for i in range(RUNS):
            store.create_flow_run(FlowRun(
                id=f"fr-{i}", flow_name="etl", pool="default",
                state=State(type=StateType.SCHEDULED, scheduled_time=T0), scheduled_at=T0))
    SqliteMigrationBackend(data_dir / "store.db").close()  # creates its progress table
    with sqlite3.connect(data_dir / "store.db") as conn:
        conn.execute("PRAGMA user_version = 3")
        conn.execute("UPDATE sluice_schema SET oldest_code = 3")
    return data_dir


def listed_run_ids(data_dir) -> list[str]:
    """Start the embedded server on `data_dir`, list its runs over HTTP, stop it."""
    plane = EmbeddedServer(data_dir=data_dir, port=0, tick_seconds=3600).start()
    try:
        answer = httpx.get(f"{plane.url}/flow-runs", params={"limit": 50})
        assert answer.status_code == 200, answer.text
        return sorted(run["id"] for run in answer.json()["items"])
    finally:
        plane.stop()


def test_this_release_writes_schema_5_and_its_steps_from_3_are_stamps():
    assert COMPRESSED_ITEMS_SCHEMA == 4 and SCHEMA_VERSION == LEAN_RUN_DOCUMENT_SCHEMA == 5
    for step in steps_between(3, 5):
        assert step.breaks_older_code
        assert step.sqlite_rows(None, [1, 2, 3]) == 0  # type: ignore[arg-type] - never touches it


def test_the_server_starts_on_a_data_dir_of_the_previous_release_and_after_migrating(tmp_path):
    # Given a data directory at schema 3
    data_dir = data_dir_at_3(tmp_path)

    # When the server of this release starts on it, Then it serves the runs (no migration yet)
    assert listed_run_ids(data_dir) == ["fr-0", "fr-1", "fr-2"]
    backend = SqliteMigrationBackend(data_dir / "store.db")
    assert backend.read_status().version == 3

    # When the operator migrates, Then the store is at 5, older code is refused, runs unchanged
    report = migrate(backend)
    assert [(s.from_version, s.to_version, s.changed) for s in report.steps] == [(3, 4, 0),
                                                                                   (4, 5, 0)]
    status = backend.read_status()
    assert (user_version(data_dir / "store.db"), status.oldest_code) == (5, 5)
    with pytest.raises(SchemaTooNew, match="schema 5, this control plane understands up to 4"):
        SchemaGuard(backend.read_status, understood=4).check()
    backend.close()
    assert listed_run_ids(data_dir) == ["fr-0", "fr-1", "fr-2"]


def test_the_server_starts_on_a_new_data_dir_at_this_version(tmp_path):
    data_dir = tmp_path / "fresh"

    assert listed_run_ids(data_dir) == []

    assert user_version(data_dir / "store.db") == SCHEMA_VERSION
    backend = SqliteMigrationBackend(data_dir / "store.db")
    assert migrate(backend).steps == []
    backend.close()

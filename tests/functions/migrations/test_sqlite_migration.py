"""Migration 1 -> 2 of the embedded server's SQLite store: `PRAGMA user_version`, the same
runner, page-exact resume."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from sluice.exceptions import SchemaTooNew
from sluice.models import FlowRun, State, StateType
from sluice_functions.adapters.sqlite import SqliteRunStore
from sluice_functions.config import SCHEMA_VERSION
from sluice_functions.migrations.guard import SchemaGuard
from sluice_functions.migrations.runner import migrate
from sluice_functions.migrations.sqlite import SqliteMigrationBackend
from sluice_functions.ports import FlowRunFilter

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
RUNS = 9


class InjectedCrash(Exception):
    pass


def user_version(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


@pytest.fixture
def legacy_store(tmp_path):
    """A store.db as the release before versions left it: user_version 0, and one run whose
    pool column disagrees with its document (written by hand)."""
    path = tmp_path / "store.db"
    with SqliteRunStore(path) as store:
        for i in range(RUNS):
            store.create_flow_run(FlowRun(
                id=f"fr-{i}", flow_name="etl", pool="default",
                state=State(type=StateType.SCHEDULED, scheduled_time=T0), scheduled_at=T0))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")
        conn.execute("UPDATE flow_runs SET pool = NULL WHERE id = 'fr-4'")
    return path


def pooled_runs(path) -> int:
    with SqliteRunStore(path) as store:
        return len(store.list_flow_runs(FlowRunFilter(pool="default"), limit=100).items)


def test_a_new_store_starts_at_this_version(tmp_path):
    SqliteRunStore(tmp_path / "store.db").close()
    assert user_version(tmp_path / "store.db") == SCHEMA_VERSION
    backend = SqliteMigrationBackend(tmp_path / "store.db")
    assert migrate(backend).steps == []


def test_legacy_store_is_migrated_once(legacy_store):
    backend = SqliteMigrationBackend(legacy_store)
    assert backend.read_status().version == 1 and pooled_runs(legacy_store) == RUNS - 1

    report = migrate(backend, page_size=2, to_version=2)

    assert user_version(legacy_store) == 2 and pooled_runs(legacy_store) == RUNS
    assert (report.steps[0].scanned, report.steps[0].changed) == (RUNS, 1)
    assert migrate(backend, page_size=2, to_version=2).steps == []


def test_dry_run_changes_nothing(legacy_store):
    report = migrate(SqliteMigrationBackend(legacy_store), dry_run=True, page_size=4)
    assert report.steps[0].changed == 1
    assert user_version(legacy_store) == 0 and pooled_runs(legacy_store) == RUNS - 1


def test_a_crashed_run_resumes_after_its_last_page(legacy_store):
    backend = SqliteMigrationBackend(legacy_store)

    def crash(step, page):
        if step.pages == 3:
            raise InjectedCrash

    with pytest.raises(InjectedCrash):
        migrate(backend, page_size=2, on_page=crash, to_version=2)
    stopped = backend.read_status()
    assert (stopped.version, stopped.migrating_to, stopped.scanned) == (1, 2, 6)

    report = migrate(backend, page_size=2, to_version=2)
    assert report.steps[0].resumed and report.steps[0].scanned == RUNS
    assert user_version(legacy_store) == 2 and pooled_runs(legacy_store) == RUNS


def test_the_embedded_guard_refuses_a_newer_store(legacy_store):
    with sqlite3.connect(legacy_store) as conn:
        conn.execute("PRAGMA user_version = 3")
    backend = SqliteMigrationBackend(legacy_store)
    with sqlite3.connect(legacy_store) as conn:
        conn.execute("UPDATE sluice_schema SET oldest_code = 3")
    with pytest.raises(SchemaTooNew, match="schema 3, this control plane understands up to 2"):
        SchemaGuard(backend.read_status, understood=2).check()

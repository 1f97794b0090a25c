"""`sluice admin status|migrate` against an embedded data directory."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

from sluice.cli import EXIT_NOT_FOUND, main
from sluice.models import FlowRun, State, StateType
from sluice_functions.adapters.sqlite import SqliteRunStore
from sluice_functions.config import SCHEMA_VERSION

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def legacy_data_dir(tmp_path):
    """A data directory the release before schema versions wrote (user_version 0)."""
    data_dir = tmp_path / "server"
    with SqliteRunStore(data_dir / "store.db") as store:
        for i in range(5):
            store.create_flow_run(FlowRun(
                id=f"fr-{i}", flow_name="etl", pool="default",
                state=State(type=StateType.SCHEDULED, scheduled_time=T0), scheduled_at=T0))
    with sqlite3.connect(data_dir / "store.db") as conn:
        conn.execute("PRAGMA user_version = 0")
    return data_dir


def status_of(data_dir, capsys) -> dict:
    capsys.readouterr()
    assert main(["admin", "status", "--data-dir", str(data_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_then_migrate_then_nothing_left(tmp_path, capsys):
    # Given a data directory of the previous release
    data_dir = legacy_data_dir(tmp_path)

    # When the operator asks, Then it is at 1 with the 1 -> 2 step pending
    before = status_of(data_dir, capsys)
    assert before["schema_version"] == 1
    assert before["this_sluice_understands"] == SCHEMA_VERSION
    assert [step["to"] for step in before["pending"]] == [2, 3, 4, 5]

    # When a dry run runs, Then nothing changes
    assert main(["admin", "migrate", "--data-dir", str(data_dir), "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert status_of(data_dir, capsys)["schema_version"] == 1

    # When it migrates, Then the summary names the step and the data is current
    assert main(["admin", "migrate", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 -> 2" in out and "2 -> 3" in out and "3 -> 4" in out and "4 -> 5" in out
    assert "schema 1 -> 5" in out
    after = status_of(data_dir, capsys)
    assert after["schema_version"] == SCHEMA_VERSION == 5 and after["pending"] == []

    # When it runs again, Then there is nothing to do
    assert main(["admin", "migrate", "--data-dir", str(data_dir)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_missing_data_dir_names_the_fix(tmp_path, capsys):
    code = main(["admin", "status", "--data-dir", str(tmp_path / "nowhere")])
    assert code == EXIT_NOT_FOUND
    assert "--data-dir" in capsys.readouterr().err

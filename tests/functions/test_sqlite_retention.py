"""The embedded server's retention: old finished runs go with everything they own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sluice.models import Completed, FlowRun, LogRecord, Running, TaskRun
from sluice_functions.adapters.sqlite import SqliteLogSink, SqliteRunStore
from sluice_functions.adapters.sqlite.retention import purge_finished_runs
from sluice_functions.ports import FlowRunFilter

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _run(store, logs, run_id, scheduled_at, state):
    store.create_flow_run(FlowRun(id=run_id, flow_name="f", state=state,
                                  scheduled_at=scheduled_at))
    store.upsert_task_runs([TaskRun(id=f"{run_id}-t", flow_run_id=run_id, task_name="t",
                                    name="t-0", state=Completed(), version=1)])
    logs.append(run_id, [LogRecord(id=f"{run_id}-l", flow_run_id=run_id,
                                   timestamp=scheduled_at, message="hi")])


def test_old_finished_runs_are_purged_with_their_rows(tmp_path):
    store, logs = SqliteRunStore(tmp_path / "s.db"), SqliteLogSink(tmp_path / "l.db")
    # Given an old finished run, an old run still running, and a recent finished run
    _run(store, logs, "old-done", NOW - timedelta(days=40), Completed())
    _run(store, logs, "old-running", NOW - timedelta(days=40), Running())
    _run(store, logs, "new-done", NOW - timedelta(days=1), Completed())
    # When retention runs with a 30-day cutoff
    removed = purge_finished_runs(store, logs, NOW - timedelta(days=30))
    # Then only the old finished run is gone, with its history, task runs and logs
    assert removed == 1
    remaining = {r.id for r in store.list_flow_runs(FlowRunFilter(), limit=10).items}
    assert remaining == {"old-running", "new-done"}
    assert store.list_state_history("old-done") == []
    assert store.list_task_runs("old-done", limit=10).items == []
    assert logs.read("old-done").items == []
    assert len(logs.read("new-done").items) == 1

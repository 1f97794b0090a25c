"""Retention for the embedded server: what DynamoDB's TTL and CloudWatch's retention policy do
in AWS. Finished runs older than the retention period go, with their history, task runs and
logs, so the database does not grow forever."""

from __future__ import annotations

from datetime import datetime

from .database import epoch_micros
from .log_sink import SqliteLogSink
from .run_store import SqliteRunStore

#: Rows removed per statement, so a purge never holds the write lock for long.
PURGE_BATCH = 500
_FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


def purge_finished_runs(store: SqliteRunStore, logs: SqliteLogSink, before: datetime) -> int:
    """Delete runs that finished and were scheduled before `before`; returns how many."""
    cutoff = epoch_micros(before)
    marks = ",".join("?" * len(_FINISHED))
    removed = 0
    while True:
        with store._db.write() as conn:
            ids = [row[0] for row in conn.execute(
                f"SELECT id FROM flow_runs WHERE state_type IN ({marks}) AND scheduled_us < ?"
                f" LIMIT {PURGE_BATCH}", (*_FINISHED, cutoff))]
            if not ids:
                break
            holes = ",".join("?" * len(ids))
            for table, column in (("flow_run_states", "flow_run_id"),
                                  ("task_runs", "flow_run_id"), ("flow_runs", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {column} IN ({holes})", ids)
        with logs._db.write() as conn:
            conn.execute(f"DELETE FROM log_records WHERE flow_run_id IN ({holes})", ids)
        removed += len(ids)
    return removed

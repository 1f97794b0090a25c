"""The console's counts on the SQLite run store: runs per time bucket and state type, aggregated
by SQLite (GROUP BY on the indexed scheduled time), never by reading documents into Python. A
mixin of `SqliteRunStore`, kept apart so that module stays readable."""

from __future__ import annotations

from datetime import datetime

from sluice.models import StateType

from ...ports import FlowRunCounts, FlowRunFilter
from .database import SqliteDatabase, epoch_micros
from .store_sql import filter_clauses, where_sql

#: The name the monitor gives a Scheduled run past its time (`monitoring.monitor`).
LATE_STATE_NAME = "Late"


class SqliteRunStats:
    """`RunStore.count_flow_runs_by_bucket` on the store's file."""

    _db: SqliteDatabase

    def count_flow_runs_by_bucket(
        self, flt: FlowRunFilter, *, bucket_seconds: int, now: datetime
    ) -> FlowRunCounts:
        """One GROUP BY over the window (`flow_runs_by_time_state` covers it when no other
        filter is set; a flow, deployment or pool uses its own index on the time), and one
        count of Late runs over the Scheduled ones already due (`flow_runs_by_state`)."""
        if flt.scheduled_after is None or flt.scheduled_before is None:
            raise ValueError("count_flow_runs_by_bucket needs scheduled_after and scheduled_before")
        origin = epoch_micros(flt.scheduled_after)
        where, params = filter_clauses(flt)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT (scheduled_us - ?) / ? AS bucket, state_type, COUNT(*) AS runs"
                f" FROM flow_runs {where_sql(where)} GROUP BY bucket, state_type",
                [origin, bucket_seconds * 1_000_000, *params],
            ).fetchall()
            late = self._count_late(conn, flt, now)
        counts: dict[tuple[int, StateType], int] = {}
        for row in rows:
            try:
                state_type = StateType(row["state_type"])
            except ValueError:  # a state type of a later version: not charted, not fatal
                continue
            counts[(int(row["bucket"]), state_type)] = int(row["runs"])
        return FlowRunCounts(counts=counts, late=late)

    @staticmethod
    def _count_late(conn, flt: FlowRunFilter, now: datetime) -> int:  # noqa: ANN001
        # Late runs are Scheduled runs whose time has passed, so only those documents are read.
        before = min(flt.scheduled_before, now)  # type: ignore[type-var]
        late_filter = FlowRunFilter(
            flow_name=flt.flow_name, deployment_id=flt.deployment_id, pool=flt.pool,
            state_types=frozenset({StateType.SCHEDULED}),
            scheduled_after=flt.scheduled_after, scheduled_before=before)
        where, params = filter_clauses(late_filter)
        where.append("json_valid(doc) AND json_extract(doc, '$.state.name') = ?")
        row = conn.execute(f"SELECT COUNT(*) FROM flow_runs {where_sql(where)}",
                           [*params, LATE_STATE_NAME]).fetchone()
        return int(row[0])

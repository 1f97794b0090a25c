"""The schema of the SQLite run store and the statements its transactions share.

The helpers taking a connection run inside a transaction their caller opened.
"""

from __future__ import annotations

import sqlite3

from sluice.exceptions import Conflict, NotFound
from sluice.models import FlowRun, StateType

from ...ports import FlowRunFilter
from .database import epoch_micros
from .worker_sessions import WORKER_SESSIONS_TABLE

#: A run's parent id as SQLite reads it from the document; a document SQLite cannot read as
#: JSON (a legacy one with a NaN token) has none instead of failing every write. Queries must
#: use this exact expression for SQLite to use the index built on it.
PARENT_EXPRESSION = ("(CASE WHEN json_valid(doc) THEN json_extract(doc, '$.parent_flow_run_id')"
                     " END)")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS flow_runs (
        id TEXT PRIMARY KEY,
        flow_name TEXT NOT NULL,
        deployment_id TEXT,
        pool TEXT,
        state_type TEXT NOT NULL,
        scheduled_us INTEGER NOT NULL,
        idempotency_key TEXT UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
    )""",
    # One index per access path of the port; each ends with (scheduled_us, id), the sort key.
    "CREATE INDEX IF NOT EXISTS flow_runs_by_time ON flow_runs (scheduled_us, id)",
    "CREATE INDEX IF NOT EXISTS flow_runs_by_state ON flow_runs (state_type, scheduled_us, id)",
    "CREATE INDEX IF NOT EXISTS flow_runs_by_deployment"
    " ON flow_runs (deployment_id, scheduled_us, id)",
    "CREATE INDEX IF NOT EXISTS flow_runs_by_flow ON flow_runs (flow_name, scheduled_us, id)",
    "CREATE INDEX IF NOT EXISTS flow_runs_by_pool_state"
    " ON flow_runs (pool, state_type, scheduled_us, id)",
    # Covers the console's counts per time bucket and state type (`run_stats`): the GROUP BY
    # reads this index alone, never the documents. Created on open, so older files gain it.
    "CREATE INDEX IF NOT EXISTS flow_runs_by_time_state ON flow_runs (scheduled_us, state_type)",
    # Subflows of a run: an expression index, so files written before it need no new column.
    f"CREATE INDEX IF NOT EXISTS flow_runs_by_parent ON flow_runs ({PARENT_EXPRESSION},"
    " scheduled_us, id)",
    # The state history; `version` is the run's version the entry was written with.
    """CREATE TABLE IF NOT EXISTS flow_run_states (
        flow_run_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        transition_id TEXT,
        state TEXT NOT NULL,
        PRIMARY KEY (flow_run_id, version)
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS flow_run_transitions"
    " ON flow_run_states (flow_run_id, transition_id) WHERE transition_id IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS task_runs (
        id TEXT PRIMARY KEY,
        flow_run_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS task_runs_by_flow_run ON task_runs (flow_run_id, id)",
    """CREATE TABLE IF NOT EXISTS deployments (
        id TEXT PRIMARY KEY,
        flow_name TEXT NOT NULL,
        name TEXT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (flow_name, name)
    )""",
    "CREATE TABLE IF NOT EXISTS pools (name TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS workers (
        pool TEXT NOT NULL,
        name TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (pool, name)
    ) WITHOUT ROWID""",
    WORKER_SESSIONS_TABLE,
)

FLOW_RUN_COLUMNS = (
    "id, flow_name, deployment_id, pool, state_type, scheduled_us, idempotency_key, version, doc"
)


#: The largest integer an SQLite column holds.
_MAX_SQLITE_INTEGER = 2**63 - 1


def flow_run_row(run: FlowRun, doc: str) -> tuple[object, ...]:
    # The service always sets `scheduled_at`; a record written without it (another version,
    # by hand) is listed by its creation time, as the DynamoDB store does.
    listed_at = run.scheduled_at or run.created or run.state.timestamp
    if not -_MAX_SQLITE_INTEGER <= run.version <= _MAX_SQLITE_INTEGER:
        raise Conflict(f"flow run {run.id} cannot be written: its version {run.version} is out "
                       "of range", details={"flow_run_id": run.id, "version": run.version})
    return (
        run.id,
        run.flow_name,
        run.deployment_id,
        run.pool,
        run.state.type.value,
        epoch_micros(listed_at),
        run.idempotency_key,
        run.version,
        doc,
    )


def check_version(conn: sqlite3.Connection, run: FlowRun) -> None:
    row = conn.execute("SELECT version FROM flow_runs WHERE id = ?", (run.id,)).fetchone()
    if row is None:
        raise NotFound(f"flow run {run.id} not found", details={"flow_run_id": run.id})
    if row["version"] != run.version:
        raise Conflict(
            f"flow run {run.id} changed since it was read (version {row['version']},"
            f" the write expected {run.version})",
            details={"flow_run_id": run.id, "version": row["version"]},
        )


def replace_flow_run(conn: sqlite3.Connection, run: FlowRun, doc: str) -> None:
    run_id, *columns = flow_run_row(run, doc)
    conn.execute(
        "UPDATE flow_runs SET flow_name = ?, deployment_id = ?, pool = ?, state_type = ?,"
        " scheduled_us = ?, idempotency_key = ?, version = ?, doc = ? WHERE id = ?",
        (*columns, run_id),
    )


def append_history(conn: sqlite3.Connection, run: FlowRun, transition_id: str | None) -> None:
    conn.execute(
        "INSERT INTO flow_run_states (flow_run_id, version, transition_id, state)"
        " VALUES (?, ?, ?, ?)",
        (run.id, run.version, transition_id, run.state.model_dump_json()),
    )


def transition_recorded(conn: sqlite3.Connection, flow_run_id: str, transition_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM flow_run_states WHERE flow_run_id = ? AND transition_id = ?",
        (flow_run_id, transition_id),
    ).fetchone()
    return row is not None


def filter_clauses(flt: FlowRunFilter) -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    for column, value in (
        ("flow_name", flt.flow_name),
        ("deployment_id", flt.deployment_id),
        ("pool", flt.pool),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if flt.state_types:
        types = sorted(StateType(t).value for t in flt.state_types)
        where.append(f"state_type IN ({', '.join('?' * len(types))})")
        params += types
    if flt.scheduled_after is not None:
        where.append("scheduled_us >= ?")
        params.append(epoch_micros(flt.scheduled_after))
    if flt.scheduled_before is not None:
        where.append("scheduled_us < ?")
        params.append(epoch_micros(flt.scheduled_before))
    if flt.parent_flow_run_id is not None:
        where.append(f"{PARENT_EXPRESSION} = ?")
        params.append(flt.parent_flow_run_id)
    for tag in sorted(flt.tags or ()):
        where.append("EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(doc) THEN doc ELSE"
                     " '{}' END, '$.tags') WHERE value = ?)")
        params.append(tag)
    if flt.holds_slot_of is not None:
        # A document SQLite cannot read as JSON (a legacy one with a NaN token) holds no slot,
        # instead of failing the count - and with it every claim of its pool.
        where.append("EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(doc) THEN doc ELSE"
                     " '{}' END, '$.slot_scopes') WHERE value = ?)")
        params.append(flt.holds_slot_of)
    return where, params


def where_sql(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""

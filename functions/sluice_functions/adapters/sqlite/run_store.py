"""`RunStore` on SQLite: the embedded server's flow runs, task runs, deployments and pools.

Every entity is stored as its model's JSON document (`model_dump_json`) next to the few columns
the queries filter and sort on, which are derived from the document on every write. Fields the
models gain later therefore round-trip without a schema change; only a new *query* needs a new
column. Sort keys on time are integer microseconds since the epoch (exact, and ordered like the
instants they stand for, unlike ISO strings of mixed precision).

A stored document that no longer validates as its model is skipped by lists and answered with
`UnreadableRecord` (409) when read by id (`adapters.records`); a write never stores a document
it could not read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sluice.exceptions import Conflict, NotFound
from sluice.models import Deployment, FlowRun, Page, Pool, State, StateType, TaskRun, Worker

from ...config import SCHEMA_VERSION
from ...ports import FlowRunFilter, ReceivedJson
from ..records import read_record, readable, written_record
from ..pages import check_page_limit
from .database import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    SqliteDatabase,
    decode_cursor,
    encode_cursor,
    epoch_micros,
)
from .run_maintenance import SqliteRunMaintenance
from .run_stats import SqliteRunStats
from .worker_sessions import SqliteWorkerSessions
from .store_sql import (
    FLOW_RUN_COLUMNS,
    SCHEMA,
    append_history,
    check_version,
    filter_clauses,
    flow_run_row,
    transition_recorded,
    replace_flow_run,
    where_sql,
)

#: The largest integer an SQLite column holds.
_INT64 = 2**63 - 1
#: pydantic-core's JSON serializer of a task run (what `model_dump_json` calls, without its wrapper).
_TASK_RUN_JSON = TaskRun.__pydantic_serializer__.to_json
#: The pool fields a store keeps; the others are live values computed per request.
POOL_CONFIGURATION_FIELDS = frozenset(
    {"name", "type", "concurrency_limit", "description", "queue_url", "dlq_url", "created",
     "paused"}
)


class SqliteRunStore(SqliteRunMaintenance, SqliteRunStats, SqliteWorkerSessions):
    """`RunStore` backed by one SQLite file (WAL, safe for the threads of one process).

    Compare-and-set writes run in `BEGIN IMMEDIATE` transactions, so the version check and the
    write (and the history entry, and the transition id) are one atomic step.
    """

    #: Task runs given with their `ReceivedJson` keep that text as their document. It reads
    #: back as the validated model, but it is the request's text (another key order, spacing,
    #: a key given twice of which the model took the last): task-run documents are read
    #: through `TaskRun` only, never taken apart in SQL.
    KEEPS_RECEIVED_JSON = True

    def __init__(
        self, path: str | Path, *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
    ) -> None:
        fresh = not Path(path).exists()
        self._db = SqliteDatabase(path, SCHEMA, busy_timeout_seconds=busy_timeout_seconds)
        if fresh:  # a new file starts at the layout this code writes; 0 (older files) means 1
            with self._db.write() as conn:
                conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteRunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- flow runs -----------------------------------------------------------------------------

    def create_flow_run(self, run: FlowRun) -> FlowRun:
        stored = run.model_copy(update={"version": 1})
        doc = stored.model_dump_json()
        written = _readable_run(doc, run.id)
        with self._db.write() as conn:
            clash = conn.execute(
                "SELECT id FROM flow_runs WHERE id = ? OR idempotency_key = ?",
                (run.id, run.idempotency_key),
            ).fetchone()
            if clash is not None:
                what = "id" if clash["id"] == run.id else f"idempotency key {run.idempotency_key!r}"
                raise Conflict(
                    f"flow run {clash['id']} already exists with this {what}",
                    details={"flow_run_id": clash["id"]},
                )
            conn.execute(
                f"INSERT INTO flow_runs ({FLOW_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                flow_run_row(stored, doc),
            )
            append_history(conn, stored, transition_id=None)
        return written

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        with self._db.read() as conn:
            row = conn.execute("SELECT doc FROM flow_runs WHERE id = ?", (flow_run_id,)).fetchone()
        if row is None:
            raise NotFound(
                f"flow run {flow_run_id} not found", details={"flow_run_id": flow_run_id}
            )
        return _run(row["doc"], flow_run_id)

    def get_flow_run_by_idempotency_key(self, idempotency_key: str) -> FlowRun | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT doc FROM flow_runs WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return None if row is None else _run(row["doc"], f"with key {idempotency_key!r}")

    def update_flow_run(self, run: FlowRun) -> FlowRun:
        stored = run.model_copy(update={"version": run.version + 1})
        doc = stored.model_dump_json()
        written = _readable_run(doc, run.id)
        with self._db.write() as conn:
            check_version(conn, run)
            replace_flow_run(conn, stored, doc)
        return written

    def set_flow_run_state(self, run: FlowRun, transition_id: str | None,
                           passed: Sequence[State] = ()) -> FlowRun:
        stored = run.model_copy(update={"version": run.version + 1 + len(passed)})
        doc = stored.model_dump_json()
        written = _readable_run(doc, run.id)
        with self._db.write() as conn:
            check_version(conn, run)
            if transition_id is not None and transition_recorded(conn, run.id, transition_id):
                raise Conflict(
                    f"transition {transition_id!r} was already applied to flow run {run.id}",
                    details={"flow_run_id": run.id, "transition_id": transition_id},
                )
            replace_flow_run(conn, stored, doc)
            for offset, state in enumerate(passed, start=run.version + 1):
                append_history(conn, stored.model_copy(update={"version": offset,
                                                               "state": state}), None)
            append_history(conn, stored, transition_id)
        return written

    def has_transition(self, flow_run_id: str, transition_id: str) -> bool:
        with self._db.read() as conn:
            return transition_recorded(conn, flow_run_id, transition_id)

    def list_state_history(self, flow_run_id: str) -> list[State]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT state FROM flow_run_states WHERE flow_run_id = ? ORDER BY version",
                (flow_run_id,),
            ).fetchall()
        return readable(rows, lambda row: State.model_validate_json(row["state"]),
                        kind="state history entry", ref=lambda row: flow_run_id)

    def list_flow_runs(
        self, flt: FlowRunFilter, *, limit: int, cursor: str | None = None
    ) -> Page[FlowRun]:
        check_page_limit(limit)
        where, params = filter_clauses(flt)
        after = decode_cursor(cursor, "flow_runs", (int, str)) if cursor else None
        if after is not None:
            # Keyset pagination on (scheduled_us, id) descending; written so the index range
            # applies to scheduled_us and only the boundary microsecond is filtered by id.
            where.append("scheduled_us <= ? AND (scheduled_us < ? OR id < ?)")
            params += [after[0], after[0], after[1]]
        sql = (
            f"SELECT scheduled_us, id, doc FROM flow_runs {where_sql(where)}"
            " ORDER BY scheduled_us DESC, id DESC LIMIT ?"
        )
        return self._flow_run_page(sql, [*params, limit + 1], limit, "flow_runs")

    def list_flow_runs_by_state(
        self,
        state_type: StateType,
        *,
        scheduled_before: datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[FlowRun]:
        check_page_limit(limit)
        where = ["state_type = ?"]
        params: list[object] = [StateType(state_type).value]
        if scheduled_before is not None:
            where.append("scheduled_us < ?")
            params.append(epoch_micros(scheduled_before))
        after = decode_cursor(cursor, "flow_runs_by_state", (int, str)) if cursor else None
        if after is not None:
            where.append("scheduled_us >= ? AND (scheduled_us > ? OR id > ?)")
            params += [after[0], after[0], after[1]]
        sql = (
            f"SELECT scheduled_us, id, doc FROM flow_runs {where_sql(where)}"
            " ORDER BY scheduled_us, id LIMIT ?"
        )
        return self._flow_run_page(sql, [*params, limit + 1], limit, "flow_runs_by_state")

    def count_flow_runs(self, flt: FlowRunFilter) -> int:
        where, params = filter_clauses(flt)
        with self._db.read() as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM flow_runs {where_sql(where)}", params)
            return int(row.fetchone()[0])

    def _flow_run_page(
        self, sql: str, params: list[object], limit: int, query: str
    ) -> Page[FlowRun]:
        # One row more than asked tells whether another page exists, so the last page says so.
        with self._db.read() as conn:
            rows = conn.execute(sql, params).fetchall()
        items = readable(rows[:limit], lambda row: FlowRun.model_validate_json(row["doc"]),
                         kind="flow run", ref=lambda row: row["id"])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(query, [last["scheduled_us"], last["id"]])
        return Page[FlowRun](items=items, next_cursor=next_cursor)

    # ---- task runs -----------------------------------------------------------------------------

    def upsert_task_runs(self, task_runs: Sequence[TaskRun],
                         received: ReceivedJson | None = None) -> int:
        # The version column is SQLite's 64-bit integer: a larger one (a task run written by
        # hand) saturates there, so later records still compare against it.
        to_json = _TASK_RUN_JSON  # the serializer itself: model_dump_json's wrapper cost ~1 us
        # The request's own text of a record, when it came validated on its own: serializing
        # each model again was a quarter of the server's time per record (issue 20).
        text = received.get if received else lambda t: None
        rows = [(t.id, t.flow_run_id, max(-_INT64, min(_INT64, t.version)),
                 text(t) or to_json(t).decode()) for t in task_runs]
        with self._db.write() as conn:
            changes_before = conn.total_changes
            conn.executemany(
                "INSERT INTO task_runs (id, flow_run_id, version, doc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET flow_run_id = excluded.flow_run_id,"
                " version = excluded.version, doc = excluded.doc"
                " WHERE excluded.version > task_runs.version",
                rows,
            )
            return conn.total_changes - changes_before

    def add_finished_task_runs(self, task_runs: Sequence[TaskRun],
                               received: ReceivedJson | None = None) -> int:
        # One row each costs SQLite nothing more.
        return self.upsert_task_runs(task_runs, received)

    def list_task_runs(
        self, flow_run_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[TaskRun]:
        check_page_limit(limit)
        where = ["flow_run_id = ?"]
        params: list[object] = [flow_run_id]
        after = decode_cursor(cursor, "task_runs", (str,)) if cursor else None
        if after is not None:
            where.append("id > ?")
            params.append(after[0])
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT id, doc FROM task_runs {where_sql(where)} ORDER BY id LIMIT ?",
                [*params, limit + 1],
            ).fetchall()
        items = readable(rows[:limit], lambda row: TaskRun.model_validate_json(row["doc"]),
                         kind="task run", ref=lambda row: row["id"])
        more = len(rows) > limit
        next_cursor = encode_cursor("task_runs", [rows[limit - 1]["id"]]) if more else None
        return Page[TaskRun](items=items, next_cursor=next_cursor)

    # ---- deployments ---------------------------------------------------------------------------

    def upsert_deployment(self, deployment: Deployment) -> Deployment:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT id, doc FROM deployments WHERE flow_name = ? AND name = ?",
                (deployment.flow_name, deployment.name),
            ).fetchone()
            if row is None:
                stored = deployment
                if conn.execute(
                    "SELECT 1 FROM deployments WHERE id = ?", (deployment.id,)
                ).fetchone():
                    raise Conflict(
                        f"deployment id {deployment.id} belongs to another deployment",
                        details={"deployment_id": deployment.id},
                    )
            else:
                try:
                    existing = Deployment.model_validate_json(row["doc"])
                    kept = {"id": existing.id, "created": existing.created,
                            "created_by": existing.created_by}
                except ValueError:  # unreadable (adapters.records): replaced, keeping its id
                    kept = {"id": row["id"]}
                stored = deployment.model_copy(update=kept)
            doc = stored.model_dump_json()
            written = written_record(Deployment, doc, kind="deployment", ref=stored.id)
            conn.execute(
                "INSERT OR REPLACE INTO deployments (id, flow_name, name, doc) VALUES (?, ?, ?, ?)",
                (stored.id, stored.flow_name, stored.name, doc),
            )
        return written

    def get_deployment(self, deployment_id: str) -> Deployment:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT doc FROM deployments WHERE id = ?", (deployment_id,)
            ).fetchone()
        if row is None:
            raise _deployment_not_found(deployment_id)
        return _deployment(row["doc"], deployment_id)

    def get_deployment_by_name(self, flow_name: str, name: str) -> Deployment:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT doc FROM deployments WHERE flow_name = ? AND name = ?", (flow_name, name)
            ).fetchone()
        if row is None:
            raise _deployment_not_found(f"{flow_name}/{name}")
        return _deployment(row["doc"], f"{flow_name}/{name}")

    def list_deployments(
        self, *, flow_name: str | None = None, limit: int, cursor: str | None = None
    ) -> Page[Deployment]:
        check_page_limit(limit)
        where: list[str] = []
        params: list[object] = []
        if flow_name is not None:
            where.append("flow_name = ?")
            params.append(flow_name)
        after = decode_cursor(cursor, "deployments", (str, str)) if cursor else None
        if after is not None:
            where.append("flow_name >= ? AND (flow_name > ? OR name > ?)")
            params += [after[0], after[0], after[1]]
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT id, flow_name, name, doc FROM deployments {where_sql(where)}"
                " ORDER BY flow_name, name LIMIT ?",
                [*params, limit + 1],
            ).fetchall()
        items = readable(rows[:limit], lambda row: Deployment.model_validate_json(row["doc"]),
                         kind="deployment", ref=lambda row: row["id"])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor("deployments", [last["flow_name"], last["name"]])
        return Page[Deployment](items=items, next_cursor=next_cursor)

    def update_deployment(self, deployment: Deployment) -> Deployment:
        doc = deployment.model_dump_json()
        written = written_record(Deployment, doc, kind="deployment", ref=deployment.id)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT flow_name, name FROM deployments WHERE id = ?", (deployment.id,)
            ).fetchone()
            if row is None:
                raise _deployment_not_found(deployment.id)
            if (row["flow_name"], row["name"]) != (deployment.flow_name, deployment.name):
                raise Conflict(
                    "a deployment's flow name and name cannot change; upsert a new deployment",
                    details={"deployment_id": deployment.id},
                )
            conn.execute("UPDATE deployments SET doc = ? WHERE id = ?", (doc, deployment.id))
        return written

    def delete_deployment(self, deployment_id: str) -> None:
        with self._db.write() as conn:
            deleted = conn.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,))
            if deleted.rowcount == 0:
                raise _deployment_not_found(deployment_id)

    # ---- pools and workers ---------------------------------------------------------------------

    def upsert_pool(self, pool: Pool) -> Pool:
        with self._db.write() as conn:
            row = conn.execute("SELECT doc FROM pools WHERE name = ?", (pool.name,)).fetchone()
            if row is not None:
                try:
                    created = Pool.model_validate_json(row["doc"]).created
                except ValueError:  # pydantic's ValidationError: the stored pool is replaced
                    created = pool.created
                pool = pool.model_copy(update={"created": created})
            doc = pool.model_dump_json(include=set(POOL_CONFIGURATION_FIELDS))
            conn.execute("INSERT OR REPLACE INTO pools (name, doc) VALUES (?, ?)", (pool.name, doc))
        return Pool.model_validate_json(doc)

    def get_pool(self, name: str) -> Pool:
        with self._db.read() as conn:
            row = conn.execute("SELECT doc FROM pools WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"pool {name!r} not found", details={"pool": name})
        return read_record(Pool, row["doc"], kind="pool", ref=name)

    def list_pools(self) -> list[Pool]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT name, doc FROM pools ORDER BY name").fetchall()
        return readable(rows, lambda row: Pool.model_validate_json(row["doc"]), kind="pool",
                        ref=lambda row: row["name"])

    def upsert_worker(self, worker: Worker) -> Worker:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT doc FROM workers WHERE pool = ? AND name = ?", (worker.pool, worker.name)
            ).fetchone()
            if row is not None:
                seen = Worker.model_validate_json(row["doc"])
                worker = seen.model_copy(update=worker.model_dump(exclude_none=True))
            doc = worker.model_dump_json()
            conn.execute(
                "INSERT OR REPLACE INTO workers (pool, name, doc) VALUES (?, ?, ?)",
                (worker.pool, worker.name, doc),
            )
        return Worker.model_validate_json(doc)

    def list_workers(self, pool: str) -> list[Worker]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT name, doc FROM workers WHERE pool = ? ORDER BY name", (pool,)
            ).fetchall()
        return readable(rows, lambda row: Worker.model_validate_json(row["doc"]), kind="worker",
                        ref=lambda row: f"{pool}/{row['name']}")


def _run(doc: str, ref: str) -> FlowRun:
    return read_record(FlowRun, doc, kind="flow run", ref=ref)


def _deployment(doc: str, ref: str) -> Deployment:
    return read_record(Deployment, doc, kind="deployment", ref=ref)


def _readable_run(doc: str, ref: str) -> FlowRun:
    return written_record(FlowRun, doc, kind="flow run", ref=ref)


def _deployment_not_found(ref: str) -> NotFound:
    return NotFound(f"deployment {ref} not found", details={"deployment": ref})

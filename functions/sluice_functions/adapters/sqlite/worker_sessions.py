"""Worker sessions (per-worker heartbeats) and batch reads of runs in the SQLite run store. A
mixin of `SqliteRunStore`, kept apart so that module stays readable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sluice.exceptions import Conflict
from sluice.models import FlowRun

from ...ports import WORKER_SESSION_KEPT, WorkerSession
from ..records import readable
from ..worker_session_records import session_document, session_of
from .database import SqliteDatabase, epoch_micros

#: SQLite binds at most 999 parameters per statement in older builds: ids go in chunks of this.
MAX_IDS_PER_QUERY = 500

#: The table, created with the store's schema (`store_sql.SCHEMA`).
WORKER_SESSIONS_TABLE = """CREATE TABLE IF NOT EXISTS worker_sessions (
        session TEXT PRIMARY KEY,
        renewed_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL,
        doc TEXT NOT NULL
    ) WITHOUT ROWID"""


class SqliteWorkerSessions:
    """`RunStore.get_flow_runs`, `get_worker_session` and `put_worker_session`."""

    _db: SqliteDatabase

    def get_flow_runs(self, flow_run_ids: Sequence[str]) -> list[FlowRun]:
        found: dict[str, FlowRun] = {}
        ids = list(dict.fromkeys(flow_run_ids))
        with self._db.read() as conn:
            for start in range(0, len(ids), MAX_IDS_PER_QUERY):
                chunk = ids[start:start + MAX_IDS_PER_QUERY]
                rows = conn.execute(
                    f"SELECT id, doc FROM flow_runs WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
                for run in readable(rows, lambda row: FlowRun.model_validate_json(row["doc"]),
                                    kind="flow run", ref=lambda row: row["id"]):
                    found[run.id] = run
        return [found[i] for i in ids if i in found]

    def get_worker_session(self, session: str) -> WorkerSession | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT doc FROM worker_sessions WHERE session = ?",
                               (session,)).fetchone()
        return None if row is None else session_of(row["doc"])

    def put_worker_session(self, session: WorkerSession, *,
                           previous_renewed_at: datetime | None,
                           alive_at: datetime) -> WorkerSession:
        with self._db.write() as conn:
            # Sessions past their TTL go as they would in DynamoDB (a few rows at a time).
            conn.execute("DELETE FROM worker_sessions WHERE expires_us < ?",
                         (epoch_micros(alive_at - WORKER_SESSION_KEPT),))
            row = conn.execute("SELECT renewed_us, expires_us FROM worker_sessions "
                               "WHERE session = ?", (session.session,)).fetchone()
            if previous_renewed_at is None:
                fresh = row is None
            else:
                fresh = (row is not None and row["renewed_us"] == epoch_micros(previous_renewed_at)
                         and row["expires_us"] >= epoch_micros(alive_at))
            if not fresh:
                raise Conflict(f"worker session {session.session} changed or expired meanwhile",
                               details={"session": session.session})
            conn.execute(
                "INSERT OR REPLACE INTO worker_sessions (session, renewed_us, expires_us, doc) "
                "VALUES (?, ?, ?, ?)",
                (session.session, epoch_micros(session.renewed_at),
                 epoch_micros(session.lease_expires_at), session_document(session)))
        return session

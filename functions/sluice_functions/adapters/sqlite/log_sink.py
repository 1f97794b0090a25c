"""`LogSink` on SQLite: the embedded server's flow-run logs.

Records are stored as JSON documents keyed by (flow run, record id), which makes appends
idempotent, and read in (timestamp, append order): `seq`, the rowid, is the append order. A
cursor holds the (timestamp, seq) of the last record returned, so a follower polling with it
sees exactly the records appended after its read with later timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sluice.models import LogRecord, Page

from ..pages import check_page_limit
from .database import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    SqliteDatabase,
    decode_cursor,
    encode_cursor,
    epoch_micros,
)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS log_records (
        seq INTEGER PRIMARY KEY,
        flow_run_id TEXT NOT NULL,
        record_id TEXT NOT NULL,
        timestamp_us INTEGER NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (flow_run_id, record_id)
    )""",
    # Ends with the rowid (seq), so it serves ORDER BY timestamp_us, seq directly.
    "CREATE INDEX IF NOT EXISTS log_records_by_time ON log_records (flow_run_id, timestamp_us)",
)

_CURSOR_QUERY = "logs"


class SqliteLogSink:
    """`LogSink` backed by one SQLite file (WAL, safe for the threads of one process)."""

    def __init__(
        self, path: str | Path, *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
    ) -> None:
        self._db = SqliteDatabase(path, SCHEMA, busy_timeout_seconds=busy_timeout_seconds)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteLogSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, flow_run_id: str, records: Sequence[LogRecord]) -> int:
        strays = sorted({r.flow_run_id for r in records if r.flow_run_id != flow_run_id})
        if strays:
            raise ValueError(f"records of flow runs {strays} appended to flow run {flow_run_id}")
        rows = [
            (flow_run_id, record.id, epoch_micros(record.timestamp), record.model_dump_json())
            for record in records
        ]
        with self._db.write() as conn:
            changes_before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO log_records (flow_run_id, record_id, timestamp_us, doc)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            return conn.total_changes - changes_before

    def delete(self, flow_run_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM log_records WHERE flow_run_id = ?", (flow_run_id,))

    def read(
        self, flow_run_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[LogRecord]:
        check_page_limit(limit)
        after = decode_cursor(cursor, _CURSOR_QUERY, (int, int)) if cursor else None
        where = "flow_run_id = ?"
        params: list[object] = [flow_run_id]
        if after is not None:
            where += " AND timestamp_us >= ? AND (timestamp_us > ? OR seq > ?)"
            params += [after[0], after[0], after[1]]
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT seq, timestamp_us, doc FROM log_records WHERE {where}"
                " ORDER BY timestamp_us, seq LIMIT ?",
                [*params, limit],
            ).fetchall()
        items = [LogRecord.model_validate_json(row["doc"]) for row in rows]
        if rows:
            next_cursor = encode_cursor(_CURSOR_QUERY, [rows[-1]["timestamp_us"], rows[-1]["seq"]])
        else:
            # Caught up: the same position, so the follower sees what is appended next.
            next_cursor = cursor or encode_cursor(_CURSOR_QUERY, None)
        return Page[LogRecord](items=items, next_cursor=next_cursor)

"""`EventStore` on SQLite: the embedded server's Sluice events, kept for a retention.

Events live in their own file (events.db) so recording one never waits on the run store's write
lock: a transition's event is one more small write, in another file. Each event is a JSON
document keyed by its id (appends are idempotent); `event_resources` indexes the event under its
resource's id and every related resource's id, for `resource_id` filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sluice.models import Page, SluiceEvent

from ..pages import check_page_limit
from .database import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    SqliteDatabase,
    decode_cursor,
    encode_cursor,
    epoch_micros,
)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        occurred_us INTEGER NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (occurred_us, id)",
    """CREATE TABLE IF NOT EXISTS event_resources (
        resource_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (resource_id, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS event_resources_by_event ON event_resources (event_id)",
)


class SqliteEventStore:
    """`EventStore` backed by one SQLite file (WAL, safe for the threads of one process)."""

    def __init__(
        self, path: str | Path, *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
    ) -> None:
        self._db = SqliteDatabase(path, SCHEMA, busy_timeout_seconds=busy_timeout_seconds)

    def close(self) -> None:
        self._db.close()

    def append(self, events: Sequence[SluiceEvent]) -> None:
        rows = [(e.id, e.name, epoch_micros(e.occurred), e.model_dump_json()) for e in events]
        resources = {
            (resource.id, event.id)
            for event in events for resource in (event.resource, *event.related)
        }
        with self._db.write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO events (id, name, occurred_us, doc) VALUES (?, ?, ?, ?)",
                rows)
            conn.executemany(
                "INSERT OR IGNORE INTO event_resources (resource_id, event_id) VALUES (?, ?)",
                sorted(resources))

    def list_events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        names: Sequence[str] | None = None,
        resource_id: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[SluiceEvent]:
        check_page_limit(limit)
        ascending = since is not None
        query = "events-asc" if ascending else "events-desc"
        where: list[str] = []
        params: list[object] = []
        if since is not None:
            where.append("occurred_us >= ?")
            params.append(epoch_micros(since))
        if until is not None:
            where.append("occurred_us < ?")
            params.append(epoch_micros(until))
        if names:
            where.append("(" + " OR ".join("substr(name, 1, ?) = ?" for _ in names) + ")")
            for prefix in names:
                params += [len(prefix), prefix]
        if resource_id is not None:
            where.append("id IN (SELECT event_id FROM event_resources WHERE resource_id = ?)")
            params.append(resource_id)
        after = decode_cursor(cursor, query, (int, str)) if cursor else None
        if after is not None:
            compare = ">" if ascending else "<"
            where.append(f"(occurred_us, id) {compare} (?, ?)")
            params += after
        order = "ASC" if ascending else "DESC"
        sql = (f"SELECT id, occurred_us, doc FROM events"
               f"{' WHERE ' + ' AND '.join(where) if where else ''}"
               f" ORDER BY occurred_us {order}, id {order} LIMIT ?")
        with self._db.read() as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [SluiceEvent.model_validate_json(row["doc"]) for row in rows]
        next_cursor = (encode_cursor(query, [rows[-1]["occurred_us"], rows[-1]["id"]])
                       if more else None)
        return Page[SluiceEvent](items=items, next_cursor=next_cursor)

    def purge_before(self, cutoff: datetime) -> int:
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM event_resources WHERE event_id IN"
                " (SELECT id FROM events WHERE occurred_us < ?)", (epoch_micros(cutoff),))
            return conn.execute("DELETE FROM events WHERE occurred_us < ?",
                                (epoch_micros(cutoff),)).rowcount

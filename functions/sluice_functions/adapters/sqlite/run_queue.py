"""`RunQueue` on SQLite: SQS semantics for the embedded server's pool queues.

A message row carries `visible_at` (wall-clock seconds): sending with a delay, receiving (the
visibility timeout) and `change_visibility` all just move it. A message is *delayed* while it was
never received and is not yet visible, *in flight* while it was received and is not yet visible
again. Receiving bumps `receive_count` and issues a fresh receipt handle, so only the latest
receiver can extend or delete it. A message that already had `max_receive_count` deliveries is
moved to the dead-letter queue by the receive that would have delivered it again (as SQS's
redrive does).

Long polling: a receiver that finds nothing waits on a condition variable that `send` and
`change_visibility` signal, with a timeout at the moment the next delayed or in-flight message
becomes visible, so a delayed message is delivered at its second and a sent one at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sluice.exceptions import NotFound

from ...ports import (
    DEFAULT_MAX_RECEIVE_COUNT,
    MAX_DELAY_SECONDS,
    MAX_RECEIVE_MESSAGES,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
    MAX_WAIT_SECONDS,
    PoolQueue,
    QueueDepth,
    QueueMessage,
)
from .database import DEFAULT_BUSY_TIMEOUT_SECONDS, SqliteDatabase

#: SQS's default visibility timeout of a queue.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30
#: Where local queues say they live until the embedded server serves them over HTTP.
DEFAULT_URL_BASE = "sluice-local://"
#: A waiting receiver looks again at least this often, so messages written by another process
#: (which cannot signal this process's condition variable) are found within this delay.
CROSS_PROCESS_POLL_SECONDS = 1.0

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS queues (
        pool TEXT PRIMARY KEY,
        max_receive_count INTEGER NOT NULL,
        visibility_timeout REAL NOT NULL,
        created_at REAL NOT NULL
    )""",
    # `seq` (the rowid) orders messages by sending; `dead_letter` = 1 once moved to the DLQ.
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        pool TEXT NOT NULL,
        body TEXT NOT NULL,
        sent_at REAL NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt_handle TEXT UNIQUE,
        dead_letter INTEGER NOT NULL DEFAULT 0
    )""",
    # Receiving reads this index in order: the pool's live messages by visible_at, then seq
    # (the rowid every index ends with), so the messages that became visible first go first.
    "CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (pool, dead_letter, visible_at)",
)


@dataclass(frozen=True)
class _QueueConfig:
    max_receive_count: int
    visibility_timeout: float


class SqliteRunQueue:
    """`RunQueue` backed by one SQLite file: a queue and a dead-letter queue per pool.

    Safe for the threads of one process; long polling wakes on sends made through this instance
    at once and on those of other processes within `CROSS_PROCESS_POLL_SECONDS`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        url_base: str = DEFAULT_URL_BASE,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self._db = SqliteDatabase(path, SCHEMA, busy_timeout_seconds=busy_timeout_seconds)
        self._url_base = url_base
        # Bumped and signalled after every write that can make a message visible earlier.
        self._visibility_changed = threading.Condition()
        self._visibility_generation = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteRunQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def queue_urls(self, pool: str) -> PoolQueue:
        """The URLs of a pool's queue and DLQ (whether or not they exist yet)."""
        queue_url = f"{self._url_base}queue/{pool}"
        return PoolQueue(pool=pool, queue_url=queue_url, dlq_url=f"{queue_url}/dead-letter")

    def create_pool_queue(
        self, pool: str, *, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    ) -> PoolQueue:
        if max_receive_count < 1:
            raise ValueError(f"max_receive_count must be at least 1, got {max_receive_count}")
        with self._db.write() as conn:
            # Creating again keeps the queue and its messages and applies the new redrive policy.
            conn.execute(
                "INSERT INTO queues (pool, max_receive_count, visibility_timeout, created_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (pool) DO UPDATE SET max_receive_count = excluded.max_receive_count",
                (pool, max_receive_count, DEFAULT_VISIBILITY_TIMEOUT_SECONDS, time.time()),
            )
        return self.queue_urls(pool)

    def declared_pool_type(self, pool: str) -> str | None:
        """Embedded pools are made by the control plane itself: none is declared elsewhere."""
        return None

    def delete_pool_queue(self, pool: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM messages WHERE pool = ?", (pool,))
            conn.execute("DELETE FROM queues WHERE pool = ?", (pool,))
        # Long-polling receivers of the pool look again and find it gone (NotFound).
        self._signal_visibility_changed()

    def send(self, pool: str, body: str, *, delay_seconds: int = 0) -> str:
        _check_range("delay_seconds", delay_seconds, 0, MAX_DELAY_SECONDS)
        message_id = str(uuid.uuid4())
        with self._db.write() as conn:
            _queue_config(conn, pool)
            now = time.time()
            conn.execute(
                "INSERT INTO messages (message_id, pool, body, sent_at, visible_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (message_id, pool, body, now, now + delay_seconds),
            )
        self._signal_visibility_changed()
        return message_id

    def receive(
        self,
        pool: str,
        *,
        max_messages: int = 1,
        wait_seconds: int = 0,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        _check_range("max_messages", max_messages, 1, MAX_RECEIVE_MESSAGES)
        _check_range("wait_seconds", wait_seconds, 0, MAX_WAIT_SECONDS)
        if visibility_timeout is not None:
            _check_range(
                "visibility_timeout", visibility_timeout, 0, MAX_VISIBILITY_TIMEOUT_SECONDS
            )
        deadline = time.monotonic() + wait_seconds
        while True:
            with self._visibility_changed:
                generation_seen = self._visibility_generation
            messages, next_visible_at = self._receive_visible(
                pool, max_messages, visibility_timeout
            )
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            pause = min(remaining, CROSS_PROCESS_POLL_SECONDS)
            if next_visible_at is not None:
                pause = min(pause, max(0.0, next_visible_at - time.time()))
            with self._visibility_changed:
                # A send between our read and this point bumped the generation: look again now
                # instead of sleeping through it.
                if self._visibility_generation == generation_seen:
                    self._visibility_changed.wait(pause)

    def change_visibility(self, pool: str, receipt_handle: str, timeout_seconds: int) -> None:
        _check_range("timeout_seconds", timeout_seconds, 0, MAX_VISIBILITY_TIMEOUT_SECONDS)
        with self._db.write() as conn:
            _queue_config(conn, pool)
            changed = conn.execute(
                "UPDATE messages SET visible_at = ?"
                " WHERE receipt_handle = ? AND pool = ? AND dead_letter = 0",
                (time.time() + timeout_seconds, receipt_handle, pool),
            )
            if changed.rowcount == 0:
                raise NotFound(
                    "no message has this receipt handle: it was deleted, moved to the"
                    " dead-letter queue, or received again since",
                    details={"pool": pool},
                )
        self._signal_visibility_changed()

    def delete(self, pool: str, receipt_handle: str) -> None:
        # Only the latest receipt deletes: SQS documents that an older one "might not" delete
        # the message, and keeping it protects the newer receiver's attempt.
        with self._db.write() as conn:
            _queue_config(conn, pool)
            conn.execute(
                "DELETE FROM messages WHERE receipt_handle = ? AND pool = ?",
                (receipt_handle, pool),
            )

    def depth(self, pool: str) -> QueueDepth:
        with self._db.read() as conn:
            _queue_config(conn, pool)
            row = conn.execute(
                "SELECT"
                " COALESCE(SUM(dead_letter = 0 AND visible_at <= :now), 0) AS visible,"
                " COALESCE(SUM(dead_letter = 0 AND visible_at > :now AND receive_count > 0), 0)"
                "  AS in_flight,"
                " COALESCE(SUM(dead_letter = 0 AND visible_at > :now AND receive_count = 0), 0)"
                "  AS delayed,"
                " COALESCE(SUM(dead_letter = 1), 0) AS dead_letter"
                " FROM messages WHERE pool = :pool",
                {"now": time.time(), "pool": pool},
            ).fetchone()
        return QueueDepth(
            visible=row["visible"],
            in_flight=row["in_flight"],
            delayed=row["delayed"],
            dead_letter=row["dead_letter"],
        )

    def _receive_visible(
        self, pool: str, max_messages: int, visibility_timeout: int | None
    ) -> tuple[list[QueueMessage], float | None]:
        """Take up to `max_messages` visible messages in one transaction.

        Returns them, and when there are none, the time the next message becomes visible (None
        when no message will without a send).
        """
        delivered: list[QueueMessage] = []
        taken: list[int] = []
        with self._db.write() as conn:
            config = _queue_config(conn, pool)
            timeout = (
                config.visibility_timeout if visibility_timeout is None else visibility_timeout
            )
            now = time.time()
            while len(delivered) < max_messages:
                # `taken` keeps a message received with timeout 0 from coming back in this call.
                rows = conn.execute(
                    "SELECT seq, message_id, body, receive_count FROM messages"
                    " WHERE pool = ? AND dead_letter = 0 AND visible_at <= ?"
                    f" AND seq NOT IN ({', '.join('?' * len(taken))})"
                    " ORDER BY visible_at, seq LIMIT ?",
                    (pool, now, *taken, max_messages - len(delivered)),
                ).fetchall()
                if not rows:
                    break
                for row in rows:
                    taken.append(row["seq"])
                    if row["receive_count"] >= config.max_receive_count:
                        _move_to_dead_letter_queue(conn, row["seq"], now)
                    else:
                        delivered.append(_deliver(conn, row, now + timeout))
            if delivered:
                return delivered, None
            upcoming = conn.execute(
                "SELECT MIN(visible_at) FROM messages"
                " WHERE pool = ? AND dead_letter = 0 AND visible_at > ?",
                (pool, now),
            ).fetchone()[0]
        return [], upcoming

    def _signal_visibility_changed(self) -> None:
        with self._visibility_changed:
            self._visibility_generation += 1
            self._visibility_changed.notify_all()


def _queue_config(conn: sqlite3.Connection, pool: str) -> _QueueConfig:
    row = conn.execute(
        "SELECT max_receive_count, visibility_timeout FROM queues WHERE pool = ?", (pool,)
    ).fetchone()
    if row is None:
        raise NotFound(f"pool {pool!r} has no queue", details={"pool": pool})
    return _QueueConfig(row["max_receive_count"], row["visibility_timeout"])


def _deliver(conn: sqlite3.Connection, row: sqlite3.Row, visible_at: float) -> QueueMessage:
    receipt_handle = f"{row['message_id']}:{uuid.uuid4().hex}"
    conn.execute(
        "UPDATE messages SET receive_count = receive_count + 1, receipt_handle = ?,"
        " visible_at = ? WHERE seq = ?",
        (receipt_handle, visible_at, row["seq"]),
    )
    return QueueMessage(
        message_id=row["message_id"],
        body=row["body"],
        receipt_handle=receipt_handle,
        receive_count=row["receive_count"] + 1,
    )


def _move_to_dead_letter_queue(conn: sqlite3.Connection, seq: int, now: float) -> None:
    # Receipts given out by the source queue do not address the message in the DLQ.
    conn.execute(
        "UPDATE messages SET dead_letter = 1, receipt_handle = NULL, visible_at = ? WHERE seq = ?",
        (now, seq),
    )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be within {low}..{high}, got {value!r}")

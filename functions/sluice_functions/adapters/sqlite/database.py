"""One SQLite file shared by the threads of one process, and what every SQLite adapter needs.

Each read or write checks a connection out of a small pool and returns it after, so no two
threads ever use one connection at once, and a server that runs a thread per request does not
open (and keep) a connection per thread. The file is in WAL mode, so readers never block the
writer and vice versa. SQLite allows one writer per file at a time: write transactions start
with `BEGIN IMMEDIATE`, which takes the write lock up front (a deferred transaction that upgrades
to a writer can fail with SQLITE_BUSY without waiting), and threads of this process queue on a
Python lock before it, so they wait their turn in a lock queue instead of in SQLite's
sleep-and-retry busy handler. The busy timeout still covers other processes using the file.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sluice.exceptions import BadRequest, Conflict, ServiceUnavailable, SluiceError

#: How long a statement waits for another process's write lock before giving up.
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
#: Seconds a caller should wait before retrying when the database stayed locked.
BUSY_RETRY_AFTER_SECONDS = 1.0
#: Idle connections kept open for reuse; more may be open while more threads are busy.
MAX_IDLE_CONNECTIONS = 8


class SqliteDatabase:
    """A SQLite file with its schema, a pool of connections and serialized write transactions.

    `schema` is a sequence of idempotent DDL statements (`CREATE ... IF NOT EXISTS`) run once
    when the database is opened.
    """

    def __init__(
        self,
        path: str | Path,
        schema: Sequence[str],
        *,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_seconds = busy_timeout_seconds
        self._write_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        with self.write() as conn:
            for statement in schema:
                conn.execute(statement)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads; each statement sees one consistent snapshot (autocommit).

        Fetch the rows inside the block: the connection goes back to the pool after it.
        """
        with translated_errors(), self._checked_out() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction: committed on success, rolled back on any exception.

        Not reentrant: a thread must not open a write inside another write.
        """
        with translated_errors(), self._checked_out() as conn, self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the idle connections; connections in use close when they are returned."""
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _checked_out(self) -> Iterator[sqlite3.Connection]:
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            with self._idle_lock:
                # A connection still inside a transaction (a failed rollback) is not reused.
                reuse = (
                    not self._closed
                    and not conn.in_transaction
                    and len(self._idle) < MAX_IDLE_CONNECTIONS
                )
                if reuse:
                    self._idle.append(conn)
            if not reuse:
                conn.close()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_seconds,
            # Autocommit: transactions are exactly the BEGIN/COMMIT this class issues.
            isolation_level=None,
            # A pooled connection serves one thread at a time, but not always the same one.
            check_same_thread=False,
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_seconds * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL loses no committed data on an application crash, only possibly
            # the last transactions on a power loss, and saves an fsync per commit.
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn sqlite3 exceptions into `sluice.exceptions`, so no backend type leaks to callers."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(f"the write conflicts with stored data: {exc}") from exc
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            raise ServiceUnavailable(
                "the local database is busy; retry shortly", retry_after=BUSY_RETRY_AFTER_SECONDS
            ) from exc
        raise ServiceUnavailable(f"the local database failed: {exc}") from exc
    except sqlite3.Error as exc:
        raise SluiceError(f"the local database failed: {exc}") from exc


# ---- values stored in index columns ------------------------------------------------------------


def epoch_micros(moment: datetime) -> int:
    """A datetime as integer microseconds since the epoch: a sort key exact to the microsecond.

    Naive datetimes are read as UTC (every datetime in Sluice is UTC; this only guards the key).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---- pagination ------------------------------------------------------------------------------


def encode_cursor(query: str, sort_key: Sequence[Any] | None) -> str:
    """An opaque cursor: URL-safe base64 of JSON naming the query and the last sort key returned."""
    payload = json.dumps({"q": query, "after": sort_key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: str, key_types: Sequence[type]) -> list[Any] | None:
    """The sort key inside a cursor made by `encode_cursor(query, ...)`; `BadRequest` otherwise.

    `key_types` is the type of each sort-key part; a cursor of another query, shape or type is
    refused, so a tampered or foreign cursor can never turn into a wrong SQL parameter.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeError, binascii.Error, ValueError, TypeError) as exc:
        raise _bad_cursor(cursor) from exc
    if not isinstance(payload, dict) or payload.get("q") != query or "after" not in payload:
        raise _bad_cursor(cursor)
    after = payload["after"]
    if after is None:
        return None
    if not isinstance(after, list) or len(after) != len(key_types):
        raise _bad_cursor(cursor)
    for part, expected in zip(after, key_types):
        if isinstance(part, bool) or not isinstance(part, expected):
            raise _bad_cursor(cursor)
    return after


def _bad_cursor(cursor: str) -> BadRequest:
    return BadRequest(
        "cursor is not a cursor of this query; pass next_cursor from the previous page",
        details={"field": "cursor", "cursor": cursor[:100]},
    )

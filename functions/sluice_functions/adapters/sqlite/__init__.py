"""SQLite adapters of the control-plane ports, for the embedded server (`sluice server start`).

Each adapter takes the path of its database file; the embedded server keeps them apart in its
data directory (store.db, queue.db, logs.db) so that queue traffic never waits on the store's
write lock. Every file is in WAL mode and safe for the threads of one process.
"""

from .event_store import SqliteEventStore
from .log_sink import SqliteLogSink
from .run_queue import SqliteRunQueue
from .run_store import SqliteRunStore

__all__ = ["SqliteEventStore", "SqliteLogSink", "SqliteRunQueue", "SqliteRunStore"]

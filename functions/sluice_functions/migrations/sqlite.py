"""Migrations of the embedded server's SQLite store (`store.db`).

The version the data is at is `PRAGMA user_version` (0: a file written before versions existed,
i.e. version 1; the run store stamps new files with `SCHEMA_VERSION`). A step under way keeps
its checkpoint (the last flow-run rowid done) in the `sluice_schema` table, written in the same
transaction as the page it covers, so a page is applied exactly once even across a crash.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..adapters.sqlite.database import SqliteDatabase
from .runner import PageResult
from .status import UNVERSIONED, SchemaStatus
from .steps import Migration

PROGRESS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sluice_schema (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        oldest_code INTEGER NOT NULL DEFAULT 1,
        migrating_to INTEGER,
        checkpoint INTEGER,
        scanned INTEGER NOT NULL DEFAULT 0,
        changed INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT
    )""",
    "INSERT OR IGNORE INTO sluice_schema (id) VALUES (1)",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def schema_version_of(conn) -> int:  # noqa: ANN001 - a sqlite3.Connection
    """The layout version of the open SQLite store (0 in the header means version 1)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0]) or UNVERSIONED


class SqliteMigrationBackend:
    """`MigrationBackend` on a SQLite run store file (`<data dir>/store.db`)."""

    def __init__(self, path: str | Path) -> None:
        self._db = SqliteDatabase(path, PROGRESS_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def read_status(self) -> SchemaStatus:
        with self._db.read() as conn:
            version = schema_version_of(conn)
            row = conn.execute("SELECT * FROM sluice_schema WHERE id = 1").fetchone()
        checkpoint = row["checkpoint"]
        return SchemaStatus(version=version, oldest_code=row["oldest_code"],
                            migrating_to=row["migrating_to"],
                            checkpoint=None if checkpoint is None else str(checkpoint),
                            scanned=row["scanned"], changed=row["changed"],
                            updated_at=row["updated_at"])

    def begin(self, step: Migration, status: SchemaStatus) -> SchemaStatus:
        if status.migrating_to == step.to_version:
            return status
        with self._db.write() as conn:
            if schema_version_of(conn) != step.from_version:
                raise ValueError(f"the store is no longer at schema {step.from_version}: run "
                                 "`sluice admin status`")
            conn.execute("UPDATE sluice_schema SET migrating_to = ?, checkpoint = NULL,"
                         " scanned = 0, changed = 0, updated_at = ? WHERE id = 1",
                         (step.to_version, _now()))
        return self.read_status()

    def migrate_page(self, step: Migration, checkpoint: str | None, page_size: int, *,
                     dry_run: bool) -> PageResult:
        after = int(checkpoint) if checkpoint is not None else 0
        with self._db.write() as conn:
            rowids = [row[0] for row in conn.execute(
                "SELECT rowid FROM flow_runs WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, page_size))]
            changed = step.sqlite_rows(conn, rowids)
            next_checkpoint = str(rowids[-1]) if len(rowids) == page_size else None
            if dry_run:
                conn.execute("ROLLBACK")  # counted, not kept
                conn.execute("BEGIN")  # `write()` commits what follows: nothing
            else:
                conn.execute("UPDATE sluice_schema SET checkpoint = ?, scanned = scanned + ?,"
                             " changed = changed + ?, updated_at = ? WHERE id = 1",
                             (next_checkpoint, len(rowids), changed, _now()))
        return PageResult(scanned=len(rowids), changed=changed, checkpoint=next_checkpoint)

    def finish(self, step: Migration) -> None:
        with self._db.write() as conn:
            # user_version lives in the file header and changes with this transaction.
            conn.execute(f"PRAGMA user_version = {int(step.to_version)}")
            oldest = step.to_version if step.breaks_older_code else None
            conn.execute("UPDATE sluice_schema SET migrating_to = NULL, checkpoint = NULL,"
                         " oldest_code = COALESCE(?, oldest_code), updated_at = ? WHERE id = 1",
                         (oldest, _now()))

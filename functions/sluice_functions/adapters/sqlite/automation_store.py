"""`AutomationStore` on SQLite: the embedded server's automations and action receipts, in the
run store's own file (tables `automations` and `automation_receipts`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sluice.exceptions import NotFound
from sluice.models import Automation

from .database import DEFAULT_BUSY_TIMEOUT_SECONDS, SqliteDatabase, epoch_micros

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS automations (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        doc TEXT NOT NULL
    )""",
    # The primary key is the exactly-once guard: a second insert of a key is ignored.
    """CREATE TABLE IF NOT EXISTS automation_receipts (
        automation_id TEXT NOT NULL,
        key TEXT NOT NULL,
        claimed_us INTEGER NOT NULL,
        PRIMARY KEY (automation_id, key)
    )""",
)


class SqliteAutomationStore:
    """Automations as JSON documents; receipts as rows keyed by (automation id, key)."""

    def __init__(self, path: str | Path, *,
                 busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> None:
        self._db = SqliteDatabase(path, SCHEMA, busy_timeout_seconds=busy_timeout_seconds)

    def close(self) -> None:
        self._db.close()

    def put_automation(self, automation: Automation) -> Automation:
        with self._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO automations (id, name, doc) VALUES (?, ?, ?)",
                         (automation.id, automation.name, automation.model_dump_json()))
        return automation.model_copy(deep=True)

    def get_automation(self, automation_id: str) -> Automation:
        with self._db.read() as conn:
            row = conn.execute("SELECT doc FROM automations WHERE id = ?",
                               (automation_id,)).fetchone()
        if row is None:
            raise _not_found(automation_id)
        return Automation.model_validate_json(row["doc"])

    def list_automations(self) -> list[Automation]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT doc FROM automations ORDER BY name, id").fetchall()
        return [Automation.model_validate_json(row["doc"]) for row in rows]

    def delete_automation(self, automation_id: str) -> None:
        with self._db.write() as conn:
            deleted = conn.execute("DELETE FROM automations WHERE id = ?",
                                   (automation_id,)).rowcount
            conn.execute("DELETE FROM automation_receipts WHERE automation_id = ?",
                         (automation_id,))
        if not deleted:
            raise _not_found(automation_id)

    def claim_receipt(self, automation_id: str, key: str, *, at: datetime) -> bool:
        with self._db.write() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO automation_receipts (automation_id, key, claimed_us) "
                "VALUES (?, ?, ?)", (automation_id, key, epoch_micros(at))).rowcount
        return inserted == 1

    def latest_receipt(self, automation_id: str, key_prefix: str) -> datetime | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT MAX(claimed_us) AS latest FROM automation_receipts "
                "WHERE automation_id = ? AND substr(key, 1, ?) = ?",
                (automation_id, len(key_prefix), key_prefix)).fetchone()
        if row is None or row["latest"] is None:
            return None
        return _from_micros(row["latest"])


def _from_micros(micros: int) -> datetime:
    from datetime import timedelta, timezone

    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)


def _not_found(automation_id: str) -> NotFound:
    return NotFound(f"no automation {automation_id!r}; list them with `sluice automation ls`",
                    details={"automation": automation_id})

"""Which layout version stored data is at, and whether this code may run on it."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.exceptions import SchemaTooNew

from ..config import SCHEMA_VERSION

#: Data written before layout versions existed: items without `sv`, a SQLite user_version of 0.
UNVERSIONED = 1


@dataclass(frozen=True)
class SchemaStatus:
    """The schema version the data is at, the oldest code that may still run on it, and the
    progress of a migration under way (None when none is)."""

    version: int
    #: Code whose SCHEMA_VERSION is at least this may run on the data: a migration that older
    #: code can still read (additive) leaves it alone, so rolling code back one release is safe.
    oldest_code: int = UNVERSIONED
    migrating_to: int | None = None
    #: Where the migration's scan stopped (backend-specific text), None: from the start.
    checkpoint: str | None = None
    scanned: int = 0
    changed: int = 0
    updated_at: str | None = None


def check_understood(status: SchemaStatus, understood: int = SCHEMA_VERSION) -> None:
    """Raise `SchemaTooNew` when code that understands layouts up to `understood` must not run
    on data at `status`: it would misread it, or write it back in an older layout."""
    if status.oldest_code > understood:
        raise SchemaTooNew(
            f"the table is at schema {status.version}, this control plane understands up to "
            f"{understood}: upgrade sluice (install the release that wrote it, then deploy "
            "the stack or restart the server)",
            retry_after=60.0,
            details={"schema_version": status.version, "oldest_code": status.oldest_code,
                     "understood": understood})

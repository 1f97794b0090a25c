"""Runs the pending migration steps on one backend, page by page, resumably.

The backend keeps the data's version and the migration's checkpoint next to the data (the
table's META item, the SQLite file). A run that stops anywhere (a crash, Ctrl-C, a throttle)
resumes from the last saved checkpoint; the page after it may be read twice, which is harmless
because every step is idempotent and every item write is conditional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import SCHEMA_VERSION
from .status import SchemaStatus
from .steps import MIGRATIONS, Migration, steps_between

#: Items read per page: one Scan request per page (1 MB at most, DynamoDB's page size limit:
#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.Pagination).
DEFAULT_PAGE_SIZE = 100


class MigrationBackend(Protocol):
    """Where a migration reads and writes: the data, its version and the checkpoint."""

    def read_status(self) -> SchemaStatus: ...

    def begin(self, step: Migration, status: SchemaStatus) -> SchemaStatus:
        """Mark `step` under way (keeping the checkpoint when it already was) and return the
        status to continue from."""

    def migrate_page(self, step: Migration, checkpoint: str | None, page_size: int, *,
                     dry_run: bool) -> PageResult:
        """Apply `step` to the page after `checkpoint` (dry run: count only) and, unless a dry
        run, save the next checkpoint."""

    def finish(self, step: Migration) -> None:
        """Record the data at `step.to_version` and clear the checkpoint."""


@dataclass(frozen=True)
class PageResult:
    scanned: int
    changed: int
    #: Where the next page starts; None: this was the last page.
    checkpoint: str | None


@dataclass
class StepReport:
    """What one step did (or, in a dry run, would do)."""

    from_version: int
    to_version: int
    description: str
    scanned: int = 0
    changed: int = 0
    pages: int = 0
    resumed: bool = False


@dataclass
class MigrationReport:
    start_version: int
    end_version: int
    dry_run: bool
    steps: list[StepReport] = field(default_factory=list)


#: Called after every page: (the step's report so far, the page's result).
PageListener = Callable[[StepReport, PageResult], Any]


def migrate(backend: MigrationBackend, *, to_version: int = SCHEMA_VERSION,
            dry_run: bool = False, page_size: int = DEFAULT_PAGE_SIZE,
            migrations: tuple[Migration, ...] = MIGRATIONS,
            on_page: PageListener | None = None) -> MigrationReport:
    """Bring the data to `to_version` (default: the version this code writes).

    Idempotent: data already there is left as is. Resumable: a step under way continues from
    its checkpoint. Refuses to go past what this code understands (`ValueError`), and never
    goes down (a lower version needs a restore: docs/operations.md, "Rollback").
    """
    if to_version > SCHEMA_VERSION:
        raise ValueError(f"schema {to_version} is newer than this sluice understands "
                         f"({SCHEMA_VERSION}): upgrade sluice first")
    status = backend.read_status()
    if to_version < status.version:
        raise ValueError(f"the data is at schema {status.version}; migrations only go forward "
                         f"(to roll back to {to_version}, restore a backup: docs/operations.md)")
    report = MigrationReport(start_version=status.version, end_version=status.version,
                             dry_run=dry_run)
    for step in steps_between(status.version, to_version, migrations):
        step_report = StepReport(step.from_version, step.to_version, step.description)
        report.steps.append(step_report)
        checkpoint: str | None = None
        if not dry_run:
            resumed = status.migrating_to == step.to_version
            status = backend.begin(step, status)
            checkpoint = status.checkpoint
            step_report.resumed = resumed
            if resumed:  # counts carry on from the interrupted run
                step_report.scanned, step_report.changed = status.scanned, status.changed
        while True:
            page = backend.migrate_page(step, checkpoint, page_size, dry_run=dry_run)
            step_report.pages += 1
            step_report.scanned += page.scanned
            step_report.changed += page.changed
            if on_page is not None:
                on_page(step_report, page)
            if page.checkpoint is None:
                break
            checkpoint = page.checkpoint
        if dry_run:
            continue
        backend.finish(step)
        status = backend.read_status()
        report.end_version = status.version
    return report

"""The ordered migration steps: each moves stored data from one layout version to the next.

A step has one transform per backend, both idempotent: applied to data already migrated they
change nothing, so a re-run, a resumed run or a concurrent writer never applies a step twice.

To add a step: bump `config.SCHEMA_VERSION`, append a `Migration` here, make the stores read
both layouts for one release (docs/operations.md, "Schema versions"), and test it from the
previous layout (tests/functions/migrations).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import (
    META_PARTITION,
    RUN_DEPLOYMENT_ID,
    RUN_ENTITY,
    RUN_FLOW_NAME,
    RUN_ORDER,
    RUN_POOL,
    RUN_STATE_TYPE,
    SCHEMA_VERSION_ATTRIBUTE,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
)

Item = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ItemChange:
    """What a step does to one DynamoDB item: attributes to set and attributes to remove."""

    set: Item = field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class Migration:
    """One step from `from_version` to `to_version` (= from_version + 1)."""

    from_version: int
    to_version: int
    description: str
    #: The change one DynamoDB item needs, or None when it needs none (already migrated).
    dynamo_item: Callable[[Item], ItemChange | None]
    #: Migrates the rows of one page of SQLite flow runs (their rowids) inside the caller's
    #: transaction; returns how many rows it changed.
    sqlite_rows: Callable[[sqlite3.Connection, list[int]], int]
    #: True when code of `from_version` misreads data at `to_version`: the data then refuses
    #: that code (`SchemaStatus.oldest_code`), and rolling code back needs a table restore.
    breaks_older_code: bool = False


# ---- 1 -> 2: every item carries its layout version; run index attributes re-derived --------------

#: The attributes a flow-run item carries for the run indexes (`dynamo_items.flow_run_item`).
RUN_INDEX_ATTRIBUTES = (RUN_ENTITY, RUN_ORDER, RUN_STATE_TYPE, RUN_FLOW_NAME, RUN_DEPLOYMENT_ID,
                        RUN_POOL)


def _below(item: Item, to_version: int) -> bool:
    """Whether a data item (not the META item) is stamped below `to_version` (no stamp: 1)."""
    if item[TABLE_PARTITION_KEY]["S"] == META_PARTITION:
        return False
    return int(item.get(SCHEMA_VERSION_ATTRIBUTE, {}).get("N", "1")) < to_version


def _is_flow_run_item(item: Item) -> bool:
    return (item[TABLE_PARTITION_KEY]["S"].startswith("RUN#")
            and item[TABLE_SORT_KEY]["S"] == "RUN")


def _derived_run_index_attributes(item: Item) -> Item | None:
    """The index attributes today's writer gives the run in `item`; None when its document
    no longer reads as a run (it is listed and refused as unreadable, as before)."""
    from sluice.models import FlowRun  # the CDK app imports this package: models only here

    from ..adapters.aws.dynamo_items import data_of, flow_run_item

    try:
        run = FlowRun.model_validate_json(data_of(item))
    except (ValueError, KeyError):
        return None
    written = flow_run_item(run, expires_at=0)
    return {name: written[name] for name in RUN_INDEX_ATTRIBUTES if name in written}


def stamp_and_reindex_item(item: Item, to_version: int = 2) -> ItemChange | None:
    """Version 1 -> 2 of one item: stamp `sv`; on a flow run, set its index attributes to
    what its JSON says (items written by hand or by older releases may lack or disagree on
    them, and would then be missing from a run listing)."""
    if not _below(item, to_version):
        return None
    updates: Item = {SCHEMA_VERSION_ATTRIBUTE: {"N": str(to_version)}}
    removals: list[str] = []
    if _is_flow_run_item(item):
        derived = _derived_run_index_attributes(item)
        if derived is not None:
            for name in RUN_INDEX_ATTRIBUTES:
                if name in derived and item.get(name) != derived[name]:
                    updates[name] = derived[name]
                elif name not in derived and name in item:
                    removals.append(name)  # e.g. a deployment id an index key cannot hold
    return ItemChange(set=updates, remove=tuple(removals))


def reindex_sqlite_runs(conn: sqlite3.Connection, rowids: list[int]) -> int:
    """Version 1 -> 2 in SQLite: the filter columns of each flow run re-derived from its
    document (the same repair as on DynamoDB; documents that no longer read are left)."""
    from sluice.models import FlowRun

    from ..adapters.sqlite.store_sql import flow_run_row

    changed = 0
    for rowid in rowids:
        row = conn.execute("SELECT id, flow_name, deployment_id, pool, state_type, scheduled_us,"
                           " idempotency_key, version, doc FROM flow_runs WHERE rowid = ?",
                           (rowid,)).fetchone()
        if row is None:
            continue
        try:
            run = FlowRun.model_validate_json(row["doc"])
            wanted = flow_run_row(run, row["doc"])
        except ValueError:
            continue
        if tuple(row) == wanted:
            continue
        conn.execute("UPDATE flow_runs SET flow_name = ?, deployment_id = ?, pool = ?,"
                     " state_type = ?, scheduled_us = ? WHERE rowid = ? AND version = ?",
                     (*wanted[1:6], rowid, row["version"]))
        changed += 1
    return changed


# ---- 2 -> 3: state history inside the run item ---------------------------------------------------


def stamp_item(item: Item, to_version: int = 3) -> ItemChange | None:
    """Version 2 -> 3 of one item: only its stamp. The layout change is in what code writes
    once the data is at 3 (a run's newest history entries and transition ids inside its item,
    `adapters.aws.dynamo_run_item`); `STATE#` and `TRANSITION#` items stay valid (older
    entries), so nothing is moved."""
    if not _below(item, to_version):
        return None
    return ItemChange(set={SCHEMA_VERSION_ATTRIBUTE: {"N": str(to_version)}})


def no_sqlite_change(conn: sqlite3.Connection, rowids: list[int]) -> int:
    """SQLite keeps its own layout (a history table; documents as text): nothing to change."""
    return 0


# ---- 3 -> 4: run documents and task sheets compressed --------------------------------------------


def stamp_item_compressed(item: Item) -> ItemChange | None:
    """Version 3 -> 4 of one item: only its stamp. Code writes run documents and sheets of
    finished task runs zlib-compressed once the data is at 4 (`config.COMPRESSED_ITEMS_SCHEMA`)
    and reads both layouts, so items of 3 stay as they are until their next write or TTL."""
    return stamp_item(item, to_version=4)


# ---- 4 -> 5: lean run documents -------------------------------------------------------------------


def stamp_item_lean(item: Item) -> ItemChange | None:
    """Version 4 -> 5 of one item: only its stamp. Code writes a run's document without what the
    item's key and attributes hold (id, version, flow name, deployment, pool, and the state
    when the newest inline history entry has it) once the data is at 5
    (`config.LEAN_RUN_DOCUMENT_SCHEMA`), and reads both, so items of 4 stay as they are."""
    return stamp_item(item, to_version=5)


#: The steps, oldest first. Constant data, not a registry: the runner takes the steps it applies
#: as an argument (tests pass their own).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        from_version=1, to_version=2,
        description="every item carries its layout version (sv); run index attributes "
                    "re-derived from each run's document",
        dynamo_item=stamp_and_reindex_item,
        sqlite_rows=reindex_sqlite_runs,
        breaks_older_code=False,  # version-1 code ignores `sv`
    ),
    Migration(
        from_version=2, to_version=3,
        description="a flow run's state history and transition ids are written inside its "
                    "item (one write per state change instead of a three-item transaction)",
        dynamo_item=stamp_item,
        sqlite_rows=no_sqlite_change,
        # Code of 2 would not see the history inside run items, and its writes would drop it.
        breaks_older_code=True,
    ),
    Migration(
        from_version=3, to_version=4,
        description="a flow run's document and each sheet of finished task runs are written "
                    "zlib-compressed (Binary): fewer write units and less storage",
        dynamo_item=stamp_item_compressed,
        sqlite_rows=no_sqlite_change,
        # Code of 3 reads `data` as a string: it cannot read a compressed run or sheet.
        breaks_older_code=True,
    ),
    Migration(
        from_version=4, to_version=5,
        description="a flow run's document leaves out what its item's key and attributes "
                    "hold (id, version, flow name, deployment, pool, newest state): a short "
                    "run's item stays within one write unit",
        dynamo_item=stamp_item_lean,
        sqlite_rows=no_sqlite_change,
        # Code of 4 reads the id, version and state from the document: a lean one has none.
        breaks_older_code=True,
    ),
)


def steps_between(current: int, target: int,
                  migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    """The steps from version `current` to `target`, in order; ValueError if one is missing."""
    by_start = {step.from_version: step for step in migrations}
    steps: list[Migration] = []
    version = current
    while version < target:
        step = by_start.get(version)
        if step is None or step.to_version != version + 1:
            raise ValueError(f"no migration from schema {version} to {version + 1} in this "
                             "release: upgrade sluice to one that has it")
        steps.append(step)
        version = step.to_version
    return steps

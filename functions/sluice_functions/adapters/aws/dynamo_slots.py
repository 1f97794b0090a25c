"""Slot holders: the runs that hold a slot of a deployment's or a pool's concurrency limit.

Each is one item in a partition per limit (`dynamo_items.slot_holder_key`), written in the
same transaction as the run's state, so a count of the partition (a strongly consistent read)
sees every claim committed before it; the run indexes are eventually consistent and could miss
one made a few milliseconds earlier.

A count also checks each holder against its run (one consistent BatchGetItem) and removes the
holders whose run no longer holds the slot: a holder left behind (a run changed by code that
does not know about holders, during an upgrade or after a rollback) then costs one extra read
once, instead of blocking the limit. The removal is conditioned on the run version the holder
was written at, so it never removes a holder a newer state change wrote again.
"""

from __future__ import annotations

from typing import Any

from sluice.exceptions import Conflict
from sluice.models import FlowRun

from ...config import TABLE_SORT_KEY
from ...ports import ACTIVE_STATE_TYPES
from . import dynamo_items as items
from . import dynamo_run_item as run_item
from .dynamo_run_queries import slot_holders_query
from .dynamo_table import SingleTable


def slot_holder_writes(table: SingleTable, run: FlowRun) -> list[tuple[str, dict[str, Any]]]:
    """The transaction items keeping `run`'s slot holders in step with its state: listed while
    its state is active, unlisted otherwise (both idempotent, so no write needs to know the
    state it left). A run admitted under no limit has none: it costs nothing extra."""
    keys = [items.slot_holder_key(scope, name, run.id) for scope, name in items.slot_scopes(run)]
    if run.state.type in ACTIVE_STATE_TYPES:
        return [("Put", table.put_request({**key, items.VERSION: items.n(run.version)}))
                for key in keys]
    return [("Delete", table.delete_request(key, None)) for key in keys]


def count_slot_holders(table: SingleTable, scope: str, name: str) -> int:
    """How many runs hold a slot of the limit; stale holders are removed on the way."""
    holders = table.all(slot_holders_query(scope, name))
    if not holders:
        return 0
    run_ids = [holder[TABLE_SORT_KEY]["S"] for holder in holders]
    runs = {}
    for item in table.batch_get([items.run_key(run_id) for run_id in run_ids], "get slot holders"):
        run = run_item.run_of(item)
        runs[run.id] = run
    held = 0
    for holder, run_id in zip(holders, run_ids):
        run = runs.get(run_id)
        if run is not None and run.state.type in ACTIVE_STATE_TYPES and scope in run.slot_scopes:
            held += 1
            continue
        key = items.slot_holder_key(scope, name, run_id)
        written_at = holder.get(items.VERSION)
        stale = table.delete_request(key, None) if written_at is None else table.delete_request(
            key, "#version = :version", names={"#version": items.VERSION},
            values={":version": written_at})
        try:
            table.transact("remove a stale slot holder", ("Delete", stale))
        except Conflict:
            held += 1  # written again meanwhile: its run was claimed again, so it holds one
    return held

"""What a flow process reported and its sender has not delivered yet (issue 20).

The engine hands each task-run record over as a snapshot: a shallow copy of the run's fields
(one C-level dict copy, no serialization on the flow's thread). Snapshots are immutable from
then on (the engine replaces field values, it never mutates a state or a list in place), so
the sender thread serializes a consistent record however far the run has moved since. Only
the latest snapshot of each task run waits: a later record replaces an earlier one, and the
control plane keeps the highest `version` of each task run anyway.

First records (Pending, version 0) wait apart, in arrival order, for half a flush interval: a
run that starts meanwhile replaces its first record, so a map's runs go once, final, instead
of twice. Taking the old ones stops at the first young one: no scan of the whole buffer.

The buffer also decides which records go as `finished_task_runs` (the contract in
`EventsBatch`): a final record of a task run whose earlier records were never sent. It
remembers only the ids it sent while they were still open, and forgets each once a final
record of it is delivered, so its memory is bounded by the runs in flight.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..models import TERMINAL_STATE_TYPES, LogRecord, StateType

Snapshot = dict[str, Any]

_PENDING = StateType.PENDING


class Taken:
    """The records of one flow run taken for sending, split the way the batch carries them."""

    __slots__ = ("task_runs", "finished", "logs")

    def __init__(self) -> None:
        #: Snapshots sent as ordinary `task_runs` (open, or final after an open one was sent).
        self.task_runs: list[Snapshot] = []
        #: Snapshots sent as `finished_task_runs`: final, and no earlier record of them sent.
        self.finished: list[Snapshot] = []
        self.logs: list[LogRecord] = []

    def __bool__(self) -> bool:
        return bool(self.task_runs or self.finished or self.logs)


class ReportBuffer:
    """Task-run snapshots and log lines waiting for the sender, and the ids sent while open."""

    def __init__(self) -> None:
        #: First records (Pending, version 0) by task-run id, in arrival order.
        self.fresh: dict[str, Snapshot] = {}
        #: The latest later record of each task run.
        self.dirty: dict[str, Snapshot] = {}
        self.logs: collections.deque[LogRecord] = collections.deque()
        #: Ids of task runs an open record of which was sent (or may have landed): their final
        #: record is an ordinary one. Emptied as their final records are delivered.
        self.sent_open: set[str] = set()

    def add_task_run(self, task_run: Any) -> int:
        """Keep a snapshot of `task_run`'s fields; returns how many later records wait (the
        size trigger). The flow's hot path: a dict copy and two dict operations."""
        snapshot = task_run.__dict__.copy()
        key = snapshot["id"]
        if snapshot["version"] == 0 and snapshot["state"].type is _PENDING:
            self.fresh[key] = snapshot
            return 0
        self.fresh.pop(key, None)
        dirty = self.dirty
        dirty[key] = snapshot
        return len(dirty)

    def is_empty(self) -> bool:
        return not (self.fresh or self.dirty or self.logs)

    def waiting(self) -> int:
        """How many later records and log lines wait (first records not counted)."""
        return len(self.dirty) + len(self.logs)

    def holds_run(self, flow_run_id: str) -> bool:
        """Whether anything of one flow run waits (a flush of that run)."""
        return any(s["flow_run_id"] == flow_run_id for s in list(self.fresh.values())) or \
            any(s["flow_run_id"] == flow_run_id for s in list(self.dirty.values())) or \
            any(r.flow_run_id == flow_run_id for r in list(self.logs))

    # -- the sender's side -------------------------------------------------------------------
    def take(self, *, held_since: datetime | None, finished_in_batch: bool,
             skip_runs: set[str], fresh_limit: int | None = None
             ) -> tuple[dict[str, Taken], bool, int]:
        """Everything waiting, by flow run; whether first records stay held; how many first
        records were taken.

        First records whose state is newer than `held_since` stay (None: take them all), and
        so do those past the oldest `fresh_limit` (None: no limit); records of `skip_runs`
        (tracked locally only) are dropped."""
        snapshots: dict[str, Snapshot] = {}
        held = False
        taken_fresh = 0
        fresh = self.fresh
        for key in list(fresh):  # arrival order: the oldest first
            snapshot = fresh.get(key)
            if snapshot is None:
                continue
            if (held_since is not None and snapshot["state"].timestamp > held_since) or \
                    (fresh_limit is not None and taken_fresh >= fresh_limit):
                held = True
                break
            if fresh.pop(key, None) is not None:
                snapshots[key] = snapshot
                taken_fresh += 1
        dirty = self.dirty
        for key in list(dirty):
            snapshot = dirty.pop(key, None)
            if snapshot is not None:
                _keep_latest(snapshots, key, snapshot)
        batches: dict[str, Taken] = {}
        for snapshot in snapshots.values():
            if snapshot["flow_run_id"] not in skip_runs:
                self._route(batches, snapshot, finished_in_batch)
        logs = self.logs
        for _ in range(len(logs)):
            record = logs.popleft()
            if record.flow_run_id not in skip_runs:
                _batch_of(batches, record.flow_run_id).logs.append(record)
        return batches, held, taken_fresh

    def take_run(self, flow_run_id: str, *, finished_in_batch: bool) -> Taken:
        """Everything waiting of one flow run (its end: nothing is held); other runs' records
        stay, in their order."""
        snapshots: dict[str, Snapshot] = {}
        for source in (self.fresh, self.dirty):
            for key in list(source):
                snapshot = source.get(key)
                if snapshot is not None and snapshot["flow_run_id"] == flow_run_id and \
                        source.pop(key, None) is not None:
                    _keep_latest(snapshots, key, snapshot)
        batches: dict[str, Taken] = {}
        for snapshot in snapshots.values():
            self._route(batches, snapshot, finished_in_batch)
        taken = batches.get(flow_run_id) or Taken()
        buffered = self.logs
        others = []
        for _ in range(len(buffered)):
            record = buffered.popleft()
            (taken.logs if record.flow_run_id == flow_run_id else others).append(record)
        buffered.extendleft(reversed(others))  # older than anything appended meanwhile
        return taken

    def _route(self, batches: dict[str, Taken], snapshot: Snapshot,
               finished_in_batch: bool) -> None:
        batch = _batch_of(batches, snapshot["flow_run_id"])
        key = snapshot["id"]
        if snapshot["state"].type not in TERMINAL_STATE_TYPES:
            self.sent_open.add(key)  # before sending: a failed request may still have landed
            batch.task_runs.append(snapshot)
        elif finished_in_batch and key not in self.sent_open:
            batch.finished.append(snapshot)
        else:
            batch.task_runs.append(snapshot)

    def delivered(self, snapshots: Iterable[Snapshot]) -> None:
        """The control plane stored these records: final ones need no memory any more."""
        sent_open = self.sent_open
        if not sent_open:
            return
        for snapshot in snapshots:
            if snapshot["state"].type in TERMINAL_STATE_TYPES:
                sent_open.discard(snapshot["id"])

    def forget(self, snapshots: Iterable[Snapshot]) -> None:
        """Records dropped for good (their attempt lost the run): nothing more of them goes."""
        for snapshot in snapshots:
            self.sent_open.discard(snapshot["id"])

    def requeue(self, snapshots: Iterable[Snapshot], logs: list[LogRecord]) -> None:
        """Put back records whose request failed (a newer record of a task run wins)."""
        dirty = self.dirty
        for snapshot in snapshots:
            dirty.setdefault(snapshot["id"], snapshot)
        self.logs.extendleft(reversed(logs))


def _keep_latest(snapshots: dict[str, Snapshot], key: str, snapshot: Snapshot) -> None:
    earlier = snapshots.get(key)
    if earlier is None or earlier["version"] <= snapshot["version"]:
        snapshots[key] = snapshot


def _batch_of(batches: dict[str, Taken], flow_run_id: str) -> Taken:
    batch = batches.get(flow_run_id)
    if batch is None:
        batch = batches[flow_run_id] = Taken()
    return batch

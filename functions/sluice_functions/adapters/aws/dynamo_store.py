"""`RunStore` on one DynamoDB table (item layout in `dynamo_items`, key schema in `config`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sluice.exceptions import Conflict, NotFound
from sluice.models import FlowRun, Page, Pool, State, StateType, TaskRun, Worker

from ...config import (
    DEFAULT_RETENTION_DAYS,
    RUN_ORDER,
    RUN_STATE_TYPE,
    RUNS_BY_STATE,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TTL_ATTRIBUTE,
)
from ...ports import FlowRunFilter, ReceivedJson
from ..records import read_record, readable, with_aware_times, written_record
from . import dynamo_items as items
from . import dynamo_run_item as run_item
from . import dynamo_task_sheets as task_sheets
from .dynamo_deployments import DynamoDeployments
from .dynamo_run_maintenance import DynamoRunMaintenance
from .dynamo_run_stats import DynamoRunStats
from .dynamo_table import NOT_EXISTS, KeyQuery, SingleTable
from .dynamo_run_merge import every_run_index_entry, run_index_page
from .dynamo_run_queries import flow_run_count_queries, matches
from .dynamo_slots import count_slot_holders, slot_holder_writes
from .dynamo_worker_sessions import DynamoWorkerSessions

#: DynamoDB serves this many conditional PutItems of one task-run batch at once; below
#: botocore's default connection pool (10), so the calls never queue for a connection.
TASK_RUN_WRITE_CONCURRENCY = 8
#: Live fields of `Pool` that `GET /pools/{name}` fills in and the store never keeps.
POOL_LIVE_FIELDS = frozenset({"queue_depth", "dlq_depth", "workers", "running"})


class DynamoRunStore(DynamoDeployments, DynamoRunMaintenance, DynamoRunStats,
                     DynamoWorkerSessions):
    """Flow runs, task runs, deployments, pools and workers in a DynamoDB single table.

    Every compare-and-set is a conditional write; a run, its history entry and its transition
    guard change together in one TransactWriteItems. Lists read a run index (eventually
    consistent) and then the runs themselves with a consistent BatchGetItem, re-checking the
    filter, so a page never shows a run in a state it has already left.
    """

    def __init__(self, client: Any, table_name: str, *,
                 retention_days: int = DEFAULT_RETENTION_DAYS,
                 clock: Callable[[], float] = time.time,
                 history_inline: Callable[[], bool] = lambda: True,
                 compressed_items: Callable[[], bool] = lambda: True,
                 lean_documents: Callable[[], bool] = lambda: True) -> None:
        self._retention_seconds = retention_days * 24 * 60 * 60
        self._clock = clock
        self._table = SingleTable(client, table_name)
        #: Whether state history goes inside the run item (schema 3, `dynamo_run_item`); the
        #: composition root answers False while the table's data is older, so code of the
        #: previous release can still run on it until `sluice admin migrate`.
        self._history_inline = history_inline
        #: Whether run documents and task sheets are written zlib-compressed (schema 4,
        #: `config.COMPRESSED_ITEMS_SCHEMA`): False while the table's data is older, likewise.
        self._compressed_items = compressed_items
        #: Whether run documents leave out what their item's attributes hold (schema 5,
        #: `config.LEAN_RUN_DOCUMENT_SCHEMA`): False while the table's data is older, likewise.
        self._lean_documents = lean_documents

    def _expires_at(self) -> int:
        return int(self._clock()) + self._retention_seconds

    def _run_item(self, run: FlowRun, expires_at: int, *,
                  state_inline: bool = False) -> items.Item:
        """`state_inline`: the write puts the run's state in the inline history as its newest
        entry, so a lean document (schema 5) leaves it out."""
        compressed = self._compressed_items()
        return items.flow_run_item(run, expires_at, compressed=compressed,
                                   lean=compressed and self._lean_documents(),
                                   state_inline=state_inline)

    # ---- flow runs ---------------------------------------------------------------------------

    def create_flow_run(self, run: FlowRun) -> FlowRun:
        stored = run.model_copy(update={"version": 1})
        expires_at = self._expires_at()
        if self._history_inline():
            writes = [("Put", self._table.put_request(run_item.with_history(
                self._run_item(stored, expires_at, state_inline=True), [(1, stored.state, None)]),
                NOT_EXISTS))]
        else:
            writes = [
                ("Put", self._table.put_request(self._run_item(stored, expires_at),
                                                NOT_EXISTS)),
                ("Put", self._table.put_request(
                    items.history_item(run.id, 1, stored.state, None, expires_at), NOT_EXISTS)),
            ]
        if run.idempotency_key is not None:
            guard = {**items.idempotency_key(run.idempotency_key),
                     items.FLOW_RUN_ID: items.s(run.id), TTL_ATTRIBUTE: items.n(expires_at)}
            writes.append(("Put", self._table.put_request(guard, NOT_EXISTS)))
        writes += slot_holder_writes(self._table, stored)
        written = written_record(FlowRun, stored.model_dump_json(), kind="flow run", ref=run.id)
        try:
            if len(writes) == 1:  # one item: a conditional PutItem at half a transaction's price
                self._table.put(writes[0][1], "create flow run")
            else:
                self._table.transact("create flow run", *writes)
        except Conflict as error:
            raise Conflict(f"flow run {run.id} or its idempotency key already exists",
                           details={"flow_run_id": run.id}) from error
        return written

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        item = self._table.get(items.run_key(flow_run_id), "get flow run")
        if item is None:
            raise NotFound(f"flow run {flow_run_id} not found",
                           details={"flow_run_id": flow_run_id})
        return read_record(FlowRun, run_item.run_text(item), kind="flow run", ref=flow_run_id)

    def get_flow_run_by_idempotency_key(self, idempotency_key: str) -> FlowRun | None:
        guard = self._table.get(items.idempotency_key(idempotency_key), "get idempotency key")
        if guard is None:
            return None
        try:
            return self.get_flow_run(guard[items.FLOW_RUN_ID]["S"])
        except NotFound:
            return None

    def _lost_write(self, run: FlowRun, written: FlowRun, error: Conflict) -> FlowRun:
        """After a failed compare-and-set: NotFound, Conflict, or the write itself had landed
        (botocore retried a PutItem whose first attempt succeeded) and it is a success."""
        current = self._table.get(items.run_key(run.id), "get flow run")
        if current is None:
            raise NotFound(f"flow run {run.id} not found", details={"flow_run_id": run.id})
        landed = read_record(FlowRun, run_item.run_text(current), kind="flow run", ref=run.id)
        if landed.model_dump_json() == written.model_dump_json():  # version and state included
            return landed
        raise Conflict(f"flow run {run.id} changed concurrently (version {run.version} is stale)",
                       details={"flow_run_id": run.id, "version": run.version}) from error

    def update_flow_run(self, run: FlowRun) -> FlowRun:
        stored = run.model_copy(update={"version": run.version + 1})
        expires_at = self._expires_at()
        item = self._run_item(stored, expires_at)
        written = written_record(FlowRun, run_item.run_text(item), kind="flow run", ref=run.id)
        # An UpdateItem, not a PutItem: the history inside the item stays as it is.
        request = run_item.document_update(self._table, run, item)
        try:
            self._table.update_if(request, "update flow run")
        except Conflict as error:
            return self._lost_write(run, written, error)
        return written

    def set_flow_run_state(self, run: FlowRun, transition_id: str | None,
                           passed: Sequence[State] = ()) -> FlowRun:
        stored = run.model_copy(update={"version": run.version + 1 + len(passed)})
        expires_at = self._expires_at()
        inline = self._history_inline()
        item = self._run_item(stored, expires_at, state_inline=inline)
        entries = run_item.new_entries(stored, passed, transition_id)
        # As it will read back: a lean document takes its state from the newest entry.
        written = written_record(FlowRun, run_item.run_text(run_item.with_history(item, entries)),
                                 kind="flow run", ref=run.id)
        slots = slot_holder_writes(self._table, stored)
        if inline:
            self._write_state_inline(run, item, written, entries, transition_id, slots)
            return written
        names, values = run_item.version_names_and_values(run)
        writes = [("Put", self._table.put_request(item, run_item.VERSION_CONDITION, names,
                                                  values))]
        writes += [("Put", self._table.put_request(
            items.history_item(run.id, version, state, tid, expires_at), NOT_EXISTS))
            for version, state, tid in entries]
        guard_at = len(writes)
        if transition_id is not None:
            guard = {**items.transition_key(run.id, transition_id),
                     TTL_ATTRIBUTE: items.n(expires_at)}
            writes.append(("Put", self._table.put_request(guard, NOT_EXISTS)))
        writes += slots  # after the guard: see reasons
        try:
            self._table.transact("set flow run state", *writes)
        except Conflict as error:
            reasons = (error.details or {}).get("reasons") or []
            if (transition_id is not None
                    and reasons[guard_at:guard_at + 1] == ["ConditionalCheckFailed"]):
                raise self._applied_before(run, transition_id) from error
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return self._lost_write(run, written, error)
            raise  # a concurrent transaction on one of the items
        return written

    def _write_state_inline(self, run: FlowRun, item: items.Item, written: FlowRun,
                            entries: list, transition_id: str | None, slots: list) -> None:
        """One conditional UpdateItem (with the slot holders: one transaction); a failed
        condition is told apart by reading the item: gone, applied before, lost race, or an
        inline history that is full (then it moves out with this change)."""
        update = run_item.state_update(self._table, run, item, entries, transition_id)
        try:
            if slots:
                self._table.transact("set flow run state", ("Update", update), *slots)
            else:
                self._table.update_if(update, "set flow run state")
            return
        except Conflict as error:
            reasons = (error.details or {}).get("reasons") or ["ConditionalCheckFailed"]
            if reasons[:1] != ["ConditionalCheckFailed"]:
                raise  # a concurrent transaction on a slot holder
            current = self._table.get(items.run_key(run.id), "get flow run")
            if current is None:
                raise NotFound(f"flow run {run.id} not found",
                               details={"flow_run_id": run.id}) from error
            if transition_id is not None and run_item.applied_transition(current, transition_id):
                raise self._applied_before(run, transition_id) from error
            if items.version_of(current) != run.version:
                self._lost_write(run, written, error)
                return
        writes = run_item.spill_writes(self._table, current, run, item, entries)
        try:
            self._table.transact("set flow run state", *writes, *slots)
        except Conflict as error:
            reasons = (error.details or {}).get("reasons") or []
            if reasons[:1] == ["ConditionalCheckFailed"]:
                self._lost_write(run, written, error)
                return
            raise

    @staticmethod
    def _applied_before(run: FlowRun, transition_id: str) -> Conflict:
        return Conflict(f"transition {transition_id} was already applied to flow run {run.id}",
                        details={"flow_run_id": run.id, "transition_id": transition_id})

    def has_transition(self, flow_run_id: str, transition_id: str) -> bool:
        current = self._table.get(items.run_key(flow_run_id), "get flow run")
        if run_item.applied_transition(current, transition_id):
            return True
        key = items.transition_key(flow_run_id, transition_id)  # spilled, or before schema 3
        return self._table.get(key, "get transition") is not None

    def list_state_history(self, flow_run_id: str) -> list[State]:
        query = KeyQuery(
            name="state-history",
            partition=(TABLE_PARTITION_KEY, items.run_partition(flow_run_id)),
            sort_condition="begins_with(#sk, :prefix)",
            names={"#sk": TABLE_SORT_KEY},
            values={":prefix": items.s(items.HISTORY_PREFIX)},
        )
        outside = readable(self._table.all(query),
                           lambda i: (run_item.history_version(i), with_aware_times(
                                      State.model_validate_json(items.data_of(i)))),
                           kind="state history entry", ref=lambda i: flow_run_id)
        current = self._table.get(items.run_key(flow_run_id), "get flow run")
        return run_item.merged_history(current, outside)

    def _fresh_runs(self, index_items: list[items.Item], flt: FlowRunFilter) -> list[FlowRun]:
        """The runs behind index entries, read consistently, that still match the filter."""
        keys = [items.key(i[TABLE_PARTITION_KEY]["S"], i[TABLE_SORT_KEY]["S"]) for i in index_items]
        runs = readable(self._table.batch_get(keys, "get flow runs"),
                        run_item.run_of,
                        kind="flow run", ref=lambda i: i[TABLE_PARTITION_KEY]["S"])
        return [run for run in runs if matches(run, flt)]

    def list_flow_runs(self, flt: FlowRunFilter, *, limit: int,
                       cursor: str | None = None) -> Page[FlowRun]:
        found, next_cursor = run_index_page(self._table, flt, limit=limit, cursor=cursor)
        return Page[FlowRun](items=self._fresh_runs(found, flt), next_cursor=next_cursor)

    def list_flow_runs_by_state(self, state_type: StateType, *,
                                scheduled_before: datetime | None = None, limit: int,
                                cursor: str | None = None) -> Page[FlowRun]:
        query = KeyQuery(name=RUNS_BY_STATE.name, index=RUNS_BY_STATE,
                         partition=(RUN_STATE_TYPE, state_type.value), forward=True)
        if scheduled_before is not None:
            query.sort_condition = "#order < :before"
            query.names["#order"] = RUN_ORDER
            query.values[":before"] = items.s(items.sortable_time(scheduled_before))
        flt = FlowRunFilter(state_types=frozenset({state_type}), scheduled_before=scheduled_before)
        found, next_cursor = self._table.page(query, limit=limit, cursor=cursor)
        return Page[FlowRun](items=self._fresh_runs(found, flt), next_cursor=next_cursor)

    def count_flow_runs(self, flt: FlowRunFilter) -> int:
        if flt.slot_limit is not None:  # exact: concurrency limits settle races with it
            return count_slot_holders(self._table, *flt.slot_limit)
        if flt.holds_slot_of is not None or flt.tags or flt.parent_flow_run_id is not None:
            # The run indexes hold neither `slot_scopes`, tags nor parents: read the runs.
            return len(self._fresh_runs(every_run_index_entry(self._table, flt), flt))
        return sum(self._table.count(query) for query in flow_run_count_queries(flt))

    # ---- task runs ---------------------------------------------------------------------------

    def _upsert_task_run(self, task_run: TaskRun, expires_at: int) -> int:
        item = {**items.task_run_key(task_run.flow_run_id, task_run.id),
                items.DATA: items.s(task_run.model_dump_json()),
                items.VERSION: items.n(task_run.version), TTL_ATTRIBUTE: items.n(expires_at)}
        request = self._table.put_request(
            item, f"{NOT_EXISTS} OR #version < :version",
            {"#pk": TABLE_PARTITION_KEY, "#version": items.VERSION},
            {":version": items.n(task_run.version)})
        try:
            self._table.put(request, "upsert task run")
        except Conflict:
            return 0  # a replay or an older record: ignored, as the port says
        return 1

    def upsert_task_runs(self, task_runs: Sequence[TaskRun],
                         received: ReceivedJson | None = None) -> int:
        # `received` is not used: items hold attributes, not the records' JSON.
        if not task_runs:
            return 0
        expires_at = self._expires_at()
        if len(task_runs) == 1:
            return self._upsert_task_run(task_runs[0], expires_at)
        # No batch API takes conditions, so the batch is conditional PutItems side by side.
        workers = min(TASK_RUN_WRITE_CONCURRENCY, len(task_runs))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._upsert_task_run, t, expires_at) for t in task_runs]
            return sum(future.result() for future in futures)

    def add_finished_task_runs(self, task_runs: Sequence[TaskRun],
                               received: ReceivedJson | None = None) -> int:
        finished = [t for t in task_runs if t.state.is_terminal]
        written = self.upsert_task_runs([t for t in task_runs if not t.state.is_terminal])
        return written + task_sheets.put_sheets(self._table, finished, self._expires_at(),
                                                compressed=self._compressed_items())

    def list_task_runs(self, flow_run_id: str, *, limit: int,
                       cursor: str | None = None) -> Page[TaskRun]:
        return task_sheets.list_page(self._table, flow_run_id, limit=limit, cursor=cursor)

    # ---- pools and workers -------------------------------------------------------------------

    def upsert_pool(self, pool: Pool) -> Pool:
        # `created` sits beside the JSON so that one UpdateItem keeps an existing pool's.
        config = pool.model_dump_json(exclude=POOL_LIVE_FIELDS | {"created"})
        update = "SET #data = :data"
        names = {"#data": items.DATA}
        values: dict[str, Any] = {":data": items.s(config)}
        if pool.created is not None:
            update += ", #created = if_not_exists(#created, :created)"
            names["#created"] = items.CREATED
            values[":created"] = items.s(pool.created.isoformat())
        stored = self._table.update(items.pool_key(pool.name), update, names, values, "upsert pool")
        return _pool_of(stored)

    def get_pool(self, name: str) -> Pool:
        item = self._table.get(items.pool_key(name), "get pool")
        if item is None:
            raise NotFound(f"pool {name} not found", details={"pool": name})
        return _pool_of(item)

    def list_pools(self) -> list[Pool]:
        query = KeyQuery(name="pools", partition=(TABLE_PARTITION_KEY, items.POOLS_PARTITION))
        return readable(self._table.all(query), _pool_of, kind="pool",
                        ref=lambda i: i[TABLE_SORT_KEY]["S"])

    def upsert_worker(self, worker: Worker) -> Worker:
        # One attribute per field (JSON-encoded), so SET leaves the fields passed as None alone.
        fields = worker.model_dump(mode="json", exclude_none=True)
        assignments = {name: items.s(_json(value)) for name, value in fields.items()}
        assignments[TTL_ATTRIBUTE] = items.n(self._expires_at())
        names = {f"#a{i}": name for i, name in enumerate(assignments)}
        values = {f":a{i}": value for i, value in enumerate(assignments.values())}
        update = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(assignments)))
        stored = self._table.update(items.worker_key(worker.pool, worker.name), update, names,
                                    values, "upsert worker")
        return Worker.model_validate(items.worker_fields(stored))

    def list_workers(self, pool: str) -> list[Worker]:
        query = KeyQuery(name="workers",
                         partition=(TABLE_PARTITION_KEY, items.workers_partition(pool)))
        return readable(self._table.all(query),
                        lambda i: Worker.model_validate(items.worker_fields(i)), kind="worker",
                        ref=lambda i: i[TABLE_SORT_KEY]["S"])


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _pool_of(item: items.Item) -> Pool:
    pool = read_record(Pool, items.data_of(item), kind="pool", ref=item[TABLE_SORT_KEY]["S"])
    if items.CREATED in item:
        pool = pool.model_copy(update={"created": datetime.fromisoformat(item[items.CREATED]["S"])})
    return pool

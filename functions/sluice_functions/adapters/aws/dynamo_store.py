"""`RunStore` on one DynamoDB table (item layout in `dynamo_items`, key schema in `config`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sluice.exceptions import Conflict, NotFound
from sluice.models import Deployment, FlowRun, Page, Pool, State, StateType, TaskRun, Worker

from ...config import (
    DEFAULT_RETENTION_DAYS,
    RUN_ORDER,
    RUN_STATE_TYPE,
    RUNS_BY_STATE,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TTL_ATTRIBUTE,
)
from ...ports import FlowRunFilter
from ..records import read_record, readable, written_record
from . import dynamo_items as items
from .dynamo_run_maintenance import DynamoRunMaintenance
from .dynamo_run_stats import DynamoRunStats
from .dynamo_table import EXISTS, NOT_EXISTS, KeyQuery, SingleTable
from .dynamo_run_queries import flow_run_count_queries, flow_run_list_query, matches
from .dynamo_slots import count_slot_holders, slot_holder_writes
from .dynamo_worker_sessions import DynamoWorkerSessions

#: DynamoDB serves this many conditional PutItems of one task-run batch at once; below
#: botocore's default connection pool (10), so the calls never queue for a connection.
TASK_RUN_WRITE_CONCURRENCY = 8
#: Deployment upserts retry after losing a race on the (flow name, name) guard at most this often.
MAX_UPSERT_ATTEMPTS = 5
#: Live fields of `Pool` that `GET /pools/{name}` fills in and the store never keeps.
POOL_LIVE_FIELDS = frozenset({"queue_depth", "dlq_depth", "workers", "running"})


class DynamoRunStore(DynamoRunMaintenance, DynamoRunStats, DynamoWorkerSessions):
    """Flow runs, task runs, deployments, pools and workers in a DynamoDB single table.

    Every compare-and-set is a conditional write; a run, its history entry and its transition
    guard change together in one TransactWriteItems. Lists read a run index (eventually
    consistent) and then the runs themselves with a consistent BatchGetItem, re-checking the
    filter, so a page never shows a run in a state it has already left.
    """

    def __init__(self, client: Any, table_name: str, *,
                 retention_days: int = DEFAULT_RETENTION_DAYS,
                 clock: Callable[[], float] = time.time) -> None:
        self._retention_seconds = retention_days * 24 * 60 * 60
        self._clock = clock
        self._table = SingleTable(client, table_name)

    def _expires_at(self) -> int:
        return int(self._clock()) + self._retention_seconds

    # ---- flow runs ---------------------------------------------------------------------------

    def create_flow_run(self, run: FlowRun) -> FlowRun:
        stored = run.model_copy(update={"version": 1})
        expires_at = self._expires_at()
        writes = [
            ("Put", self._table.put_request(items.flow_run_item(stored, expires_at), NOT_EXISTS)),
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
        return read_record(FlowRun, items.data_of(item), kind="flow run", ref=flow_run_id)

    def get_flow_run_by_idempotency_key(self, idempotency_key: str) -> FlowRun | None:
        guard = self._table.get(items.idempotency_key(idempotency_key), "get idempotency key")
        if guard is None:
            return None
        try:
            return self.get_flow_run(guard[items.FLOW_RUN_ID]["S"])
        except NotFound:
            return None

    def _version_condition(self, run: FlowRun) -> dict[str, Any]:
        return {
            "condition": "attribute_exists(#pk) AND #version = :expected",
            "names": {"#pk": TABLE_PARTITION_KEY, "#version": items.VERSION},
            "values": {":expected": items.n(run.version)},
        }

    def _lost_write(self, run: FlowRun, written: items.Item, error: Conflict) -> FlowRun:
        """After a failed compare-and-set: NotFound, Conflict, or the write itself had landed
        (botocore retried a PutItem whose first attempt succeeded) and it is a success."""
        current = self._table.get(items.run_key(run.id), "get flow run")
        if current is None:
            raise NotFound(f"flow run {run.id} not found", details={"flow_run_id": run.id})
        if items.data_of(current) == items.data_of(written):
            return FlowRun.model_validate_json(items.data_of(current))
        raise Conflict(f"flow run {run.id} changed concurrently (version {run.version} is stale)",
                       details={"flow_run_id": run.id, "version": run.version}) from error

    def update_flow_run(self, run: FlowRun) -> FlowRun:
        stored = run.model_copy(update={"version": run.version + 1})
        item = items.flow_run_item(stored, self._expires_at())
        written = written_record(FlowRun, items.data_of(item), kind="flow run", ref=run.id)
        cas = self._version_condition(run)
        try:
            self._table.put(self._table.put_request(item, **cas), "update flow run")
        except Conflict as error:
            return self._lost_write(run, item, error)
        return written

    def set_flow_run_state(self, run: FlowRun, transition_id: str | None) -> FlowRun:
        stored = run.model_copy(update={"version": run.version + 1})
        expires_at = self._expires_at()
        item = items.flow_run_item(stored, expires_at)
        written = written_record(FlowRun, items.data_of(item), kind="flow run", ref=run.id)
        cas = self._version_condition(run)
        writes = [
            ("Put", self._table.put_request(item, cas["condition"], cas["names"], cas["values"])),
            ("Put", self._table.put_request(items.history_item(run.id, stored.version, stored.state,
                                                 transition_id, expires_at), NOT_EXISTS)),
        ]
        if transition_id is not None:
            guard = {**items.transition_key(run.id, transition_id),
                     TTL_ATTRIBUTE: items.n(expires_at)}
            writes.append(("Put", self._table.put_request(guard, NOT_EXISTS)))
        writes += slot_holder_writes(self._table, stored)  # after the guard: see reasons
        try:
            self._table.transact("set flow run state", *writes)
        except Conflict as error:
            reasons = (error.details or {}).get("reasons") or []
            if reasons[2:3] == ["ConditionalCheckFailed"]:
                raise Conflict(f"transition {transition_id} was already applied to flow run "
                               f"{run.id}", details={"flow_run_id": run.id,
                                                     "transition_id": transition_id}) from error
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return self._lost_write(run, item, error)
            raise  # a concurrent transaction on one of the items
        return written

    def has_transition(self, flow_run_id: str, transition_id: str) -> bool:
        key = items.transition_key(flow_run_id, transition_id)
        return self._table.get(key, "get transition") is not None

    def list_state_history(self, flow_run_id: str) -> list[State]:
        query = KeyQuery(
            name="state-history",
            partition=(TABLE_PARTITION_KEY, items.run_partition(flow_run_id)),
            sort_condition="begins_with(#sk, :prefix)",
            names={"#sk": TABLE_SORT_KEY},
            values={":prefix": items.s(items.HISTORY_PREFIX)},
        )
        return readable(self._table.all(query),
                        lambda i: State.model_validate_json(items.data_of(i)),
                        kind="state history entry", ref=lambda i: flow_run_id)

    def _fresh_runs(self, index_items: list[items.Item], flt: FlowRunFilter) -> list[FlowRun]:
        """The runs behind index entries, read consistently, that still match the filter."""
        keys = [items.key(i[TABLE_PARTITION_KEY]["S"], i[TABLE_SORT_KEY]["S"]) for i in index_items]
        runs = readable(self._table.batch_get(keys, "get flow runs"),
                        lambda i: FlowRun.model_validate_json(items.data_of(i)),
                        kind="flow run", ref=lambda i: i[TABLE_PARTITION_KEY]["S"])
        return [run for run in runs if matches(run, flt)]

    def list_flow_runs(self, flt: FlowRunFilter, *, limit: int,
                       cursor: str | None = None) -> Page[FlowRun]:
        found, next_cursor = self._table.page(flow_run_list_query(flt), limit=limit, cursor=cursor)
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
            return len(self._fresh_runs(self._table.all(flow_run_list_query(flt)), flt))
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

    def upsert_task_runs(self, task_runs: Sequence[TaskRun]) -> int:
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

    def list_task_runs(self, flow_run_id: str, *, limit: int,
                       cursor: str | None = None) -> Page[TaskRun]:
        query = KeyQuery(
            name="task-runs",
            partition=(TABLE_PARTITION_KEY, items.run_partition(flow_run_id)),
            sort_condition="begins_with(#sk, :prefix)",
            names={"#sk": TABLE_SORT_KEY},
            values={":prefix": items.s(items.TASK_PREFIX)},
        )
        found, next_cursor = self._table.page(query, limit=limit, cursor=cursor)
        task_runs = readable(found, lambda i: TaskRun.model_validate_json(items.data_of(i)),
                             kind="task run", ref=lambda i: i[TABLE_SORT_KEY]["S"])
        return Page[TaskRun](items=task_runs, next_cursor=next_cursor)

    # ---- deployments -------------------------------------------------------------------------

    def _deployment_writes(self, deployment: Deployment, *, insert: bool) -> list:
        data = items.s(deployment.model_dump_json())
        by_id = {**items.deployment_key(deployment.id), items.DATA: data}
        by_name = {**items.deployment_name_key(deployment.flow_name, deployment.name),
                   items.DATA: data, items.DEPLOYMENT_ID: items.s(deployment.id)}
        if insert:  # the name item first: its reason tells a taken name from a taken id
            return [("Put", self._table.put_request(by_name, NOT_EXISTS)),
                    ("Put", self._table.put_request(by_id, NOT_EXISTS))]
        # Replace only while the name still belongs to this deployment (not deleted meanwhile).
        owner = {"#owner": items.DEPLOYMENT_ID}
        return [
            ("Put", self._table.put_request(by_name, "#owner = :id", owner,
                                            {":id": items.s(deployment.id)})),
            ("Put", self._table.put_request(by_id, EXISTS)),
        ]

    def upsert_deployment(self, deployment: Deployment) -> Deployment:
        name_key = items.deployment_name_key(deployment.flow_name, deployment.name)
        for _ in range(MAX_UPSERT_ATTEMPTS):
            current = self._table.get(name_key, "get deployment by name")
            if current is None:
                stored = deployment
            else:
                try:
                    existing = Deployment.model_validate_json(items.data_of(current))
                    kept = {"id": existing.id, "created": existing.created,
                            "created_by": existing.created_by}
                except ValueError:  # unreadable (adapters.records): replaced, keeping its id
                    kept = {"id": current[items.DEPLOYMENT_ID]["S"]}
                stored = deployment.model_copy(update=kept)
            written_record(Deployment, stored.model_dump_json(), kind="deployment",
                           ref=stored.id)
            try:
                self._table.transact("upsert deployment",
                                     *self._deployment_writes(stored, insert=current is None))
            except Conflict as error:
                reasons = (error.details or {}).get("reasons") or []
                if current is None and reasons[:2] == ["None", "ConditionalCheckFailed"]:
                    raise Conflict(f"deployment id {deployment.id} already exists under another "
                                   "name", details={"deployment_id": deployment.id}) from error
                continue  # lost a race on the name (insert or delete meanwhile): read again
            return Deployment.model_validate_json(stored.model_dump_json())
        raise Conflict(f"deployment {deployment.flow_name}/{deployment.name} is being changed "
                       "concurrently; retry")

    def get_deployment(self, deployment_id: str) -> Deployment:
        item = self._table.get(items.deployment_key(deployment_id), "get deployment")
        if item is None:
            raise NotFound(f"deployment {deployment_id} not found",
                           details={"deployment_id": deployment_id})
        return read_record(Deployment, items.data_of(item), kind="deployment", ref=deployment_id)

    def get_deployment_by_name(self, flow_name: str, name: str) -> Deployment:
        item = self._table.get(items.deployment_name_key(flow_name, name), "get deployment")
        if item is None:
            raise NotFound(f"deployment {flow_name}/{name} not found",
                           details={"flow_name": flow_name, "name": name})
        return read_record(Deployment, items.data_of(item), kind="deployment",
                           ref=f"{flow_name}/{name}")

    def list_deployments(self, *, flow_name: str | None = None, limit: int,
                         cursor: str | None = None) -> Page[Deployment]:
        query = KeyQuery(name="deployments",
                         partition=(TABLE_PARTITION_KEY, items.DEPLOYMENT_NAMES_PARTITION))
        if flow_name is not None:
            query.name = "deployments-of-flow"
            query.sort_condition = "begins_with(#sk, :flow)"
            query.names["#sk"] = TABLE_SORT_KEY
            query.values[":flow"] = items.s(items.deployment_name_sort_key(flow_name))
        found, next_cursor = self._table.page(query, limit=limit, cursor=cursor)
        deployments = readable(found, lambda i: Deployment.model_validate_json(items.data_of(i)),
                               kind="deployment", ref=lambda i: i[TABLE_SORT_KEY]["S"])
        return Page[Deployment](items=deployments, next_cursor=next_cursor)

    def update_deployment(self, deployment: Deployment) -> Deployment:
        written_record(Deployment, deployment.model_dump_json(), kind="deployment",
                       ref=deployment.id)
        current = self.get_deployment(deployment.id)
        if (current.flow_name, current.name) != (deployment.flow_name, deployment.name):
            raise Conflict("a deployment's flow name and name cannot change; upsert a new "
                           "deployment", details={"deployment_id": deployment.id})
        try:
            self._table.transact("update deployment",
                                 *self._deployment_writes(deployment, insert=False))
        except Conflict:
            self.get_deployment(deployment.id)  # NotFound if it was deleted meanwhile
            raise
        return Deployment.model_validate_json(deployment.model_dump_json())

    def delete_deployment(self, deployment_id: str) -> None:
        current = self.get_deployment(deployment_id)
        owner = {"#owner": items.DEPLOYMENT_ID}
        try:
            self._table.transact(
                "delete deployment",
                ("Delete", self._table.delete_request(items.deployment_key(deployment_id), EXISTS)),
                ("Delete", self._table.delete_request(
                    items.deployment_name_key(current.flow_name, current.name), "#owner = :id",
                    owner, {":id": items.s(deployment_id)})),
            )
        except Conflict as error:
            raise NotFound(f"deployment {deployment_id} not found",
                           details={"deployment_id": deployment_id}) from error

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

"""In-memory adapters of the four ports, for testing the use cases without I/O.

They follow the contract of `sluice_functions.ports` (compare-and-set versions, transition-id
dedupe, unique idempotency keys, at-least-once queue) in the simplest way, and count writes so
tests can assert that a refused request wrote nothing.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from sluice.exceptions import BadRequest, Conflict, NotFound, ServiceUnavailable
from sluice.models import (
    Deployment,
    FlowRun,
    LogRecord,
    Page,
    Pool,
    State,
    StateType,
    TaskRun,
    Worker,
    utcnow,
)
from sluice_functions.ports import (
    DEFAULT_MAX_RECEIVE_COUNT,
    MAX_DELAY_SECONDS,
    FlowRunCounts,
    FlowRunFilter,
    PoolQueue,
    QueueDepth,
    QueueMessage,
    WorkerSession,
)

#: The fixed "now" of the service tests.
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def _page(items: list, limit: int, cursor: str | None) -> Page:
    try:
        start = int(cursor) if cursor else 0
    except ValueError:
        raise BadRequest(f"bad cursor {cursor!r}") from None
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return Page(items=chunk, next_cursor=str(start + limit) if more else None)


class InMemoryRunStore:
    def __init__(self) -> None:
        self.runs: dict[str, FlowRun] = {}
        self.history: dict[str, list[State]] = defaultdict(list)
        self.transition_ids: set[tuple[str, str]] = set()
        self.idempotency_keys: dict[str, str] = {}
        self.task_runs: dict[str, TaskRun] = {}
        self.deployments: dict[str, Deployment] = {}
        self.pools: dict[str, Pool] = {}
        self.workers: dict[tuple[str, str], Worker] = {}
        self.sessions: dict[str, WorkerSession] = {}
        self.writes = 0

    # flow runs
    def create_flow_run(self, run: FlowRun) -> FlowRun:
        if run.id in self.runs:
            raise Conflict(f"flow run {run.id} exists")
        if run.idempotency_key and run.idempotency_key in self.idempotency_keys:
            raise Conflict(f"idempotency key {run.idempotency_key} is taken")
        stored = run.model_copy(update={"version": 1}, deep=True)
        self.runs[run.id] = stored
        self.history[run.id].append(stored.state)
        if run.idempotency_key:
            self.idempotency_keys[run.idempotency_key] = run.id
        self.writes += 1
        return stored.model_copy(deep=True)

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        if flow_run_id not in self.runs:
            raise NotFound(f"no flow run {flow_run_id}")
        return self.runs[flow_run_id].model_copy(deep=True)

    def get_flow_run_by_idempotency_key(self, idempotency_key: str) -> FlowRun | None:
        run_id = self.idempotency_keys.get(idempotency_key)
        return self.get_flow_run(run_id) if run_id else None

    def _compare_and_set(self, run: FlowRun, steps: int = 1) -> FlowRun:
        current = self.get_flow_run(run.id)
        if current.version != run.version:
            raise Conflict(f"flow run {run.id} is at version {current.version}, not {run.version}")
        stored = run.model_copy(update={"version": run.version + steps}, deep=True)
        self.runs[run.id] = stored
        self.writes += 1
        return stored

    def update_flow_run(self, run: FlowRun) -> FlowRun:
        return self._compare_and_set(run).model_copy(deep=True)

    def set_flow_run_state(self, run: FlowRun, transition_id: str | None,
                           passed: Sequence[State] = ()) -> FlowRun:
        if transition_id and (run.id, transition_id) in self.transition_ids:
            self.get_flow_run(run.id)  # NotFound first, like the real stores
            raise Conflict(f"transition {transition_id} was already applied")
        stored = self._compare_and_set(run, steps=1 + len(passed))
        self.history[run.id].extend(passed)
        self.history[run.id].append(stored.state)
        if transition_id:
            self.transition_ids.add((run.id, transition_id))
        return stored.model_copy(deep=True)

    def has_transition(self, flow_run_id: str, transition_id: str) -> bool:
        return (flow_run_id, transition_id) in self.transition_ids

    def list_state_history(self, flow_run_id: str) -> list[State]:
        return list(self.history.get(flow_run_id, []))

    def _matching(self, flt: FlowRunFilter) -> list[FlowRun]:
        def matches(run: FlowRun) -> bool:
            return (
                (flt.flow_name is None or run.flow_name == flt.flow_name)
                and (flt.deployment_id is None or run.deployment_id == flt.deployment_id)
                and (flt.pool is None or run.pool == flt.pool)
                and (not flt.state_types or run.state.type in flt.state_types)
                and (flt.scheduled_after is None or run.scheduled_at >= flt.scheduled_after)
                and (flt.scheduled_before is None or run.scheduled_at < flt.scheduled_before)
                and (flt.holds_slot_of is None or flt.holds_slot_of in run.slot_scopes)
                and (not flt.tags or flt.tags <= set(run.tags))
                and (flt.parent_flow_run_id is None
                     or run.parent_flow_run_id == flt.parent_flow_run_id)
            )

        return [r.model_copy(deep=True) for r in self.runs.values() if matches(r)]

    def list_flow_runs(self, flt: FlowRunFilter, *, limit: int, cursor: str | None = None):
        runs = sorted(self._matching(flt), key=lambda r: (r.scheduled_at, r.id), reverse=True)
        return _page(runs, limit, cursor)

    def list_flow_runs_by_state(
        self, state_type: StateType, *, scheduled_before: datetime | None = None, limit: int,
        cursor: str | None = None,
    ):
        flt = FlowRunFilter(state_types=frozenset({state_type}), scheduled_before=scheduled_before)
        runs = sorted(self._matching(flt), key=lambda r: (r.scheduled_at, r.id))
        return _page(runs, limit, cursor)

    def count_flow_runs(self, flt: FlowRunFilter) -> int:
        return len(self._matching(flt))

    def count_flow_runs_by_bucket(self, flt: FlowRunFilter, *, bucket_seconds: int,
                                  now: datetime) -> FlowRunCounts:
        runs = self._matching(flt)
        counts = FlowRunCounts.tally(((r.scheduled_at, r.state.type) for r in runs),
                                     origin=flt.scheduled_after, bucket_seconds=bucket_seconds)
        late = sum(1 for r in runs if r.state.name == "Late" and r.scheduled_at < now)
        return FlowRunCounts(counts=counts, late=late)

    # task runs
    def upsert_task_runs(self, task_runs: Sequence[TaskRun], received=None) -> int:
        written = 0
        for task_run in task_runs:
            stored = self.task_runs.get(task_run.id)
            if stored is None or stored.version < task_run.version:
                self.task_runs[task_run.id] = task_run.model_copy(deep=True)
                written += 1
        self.writes += written
        return written

    def add_finished_task_runs(self, task_runs: Sequence[TaskRun], received=None) -> int:
        return self.upsert_task_runs(task_runs)

    def list_task_runs(self, flow_run_id: str, *, limit: int, cursor: str | None = None):
        runs = sorted(
            (t.model_copy(deep=True) for t in self.task_runs.values() if t.flow_run_id == flow_run_id),
            key=lambda t: t.id,
        )
        return _page(runs, limit, cursor)

    # deployments
    def upsert_deployment(self, deployment: Deployment) -> Deployment:
        existing = next(
            (d for d in self.deployments.values()
             if (d.flow_name, d.name) == (deployment.flow_name, deployment.name)),
            None,
        )
        if existing is not None:
            deployment = deployment.model_copy(
                update={"id": existing.id, "created": existing.created,
                        "created_by": existing.created_by}
            )
        self.deployments[deployment.id] = deployment.model_copy(deep=True)
        self.writes += 1
        return deployment.model_copy(deep=True)

    def get_deployment(self, deployment_id: str) -> Deployment:
        if deployment_id not in self.deployments:
            raise NotFound(f"no deployment {deployment_id}")
        return self.deployments[deployment_id].model_copy(deep=True)

    def get_deployment_by_name(self, flow_name: str, name: str) -> Deployment:
        for deployment in self.deployments.values():
            if (deployment.flow_name, deployment.name) == (flow_name, name):
                return deployment.model_copy(deep=True)
        raise NotFound(f"no deployment {flow_name}/{name}")

    def list_deployments(self, *, flow_name: str | None = None, limit: int, cursor: str | None = None):
        found = sorted(
            (d.model_copy(deep=True) for d in self.deployments.values()
             if flow_name is None or d.flow_name == flow_name),
            key=lambda d: (d.flow_name, d.name),
        )
        return _page(found, limit, cursor)

    def update_deployment(self, deployment: Deployment) -> Deployment:
        self.get_deployment(deployment.id)
        self.deployments[deployment.id] = deployment.model_copy(deep=True)
        self.writes += 1
        return deployment.model_copy(deep=True)

    def delete_deployment(self, deployment_id: str) -> None:
        self.get_deployment(deployment_id)
        del self.deployments[deployment_id]
        self.writes += 1

    # pools and workers
    def upsert_pool(self, pool: Pool) -> Pool:
        existing = self.pools.get(pool.name)
        stored = Pool(
            name=pool.name, concurrency_limit=pool.concurrency_limit,
            description=pool.description, queue_url=pool.queue_url, dlq_url=pool.dlq_url,
            created=existing.created if existing else pool.created, paused=pool.paused,
        )
        self.pools[pool.name] = stored
        self.writes += 1
        return stored.model_copy(deep=True)

    def get_pool(self, name: str) -> Pool:
        if name not in self.pools:
            raise NotFound(f"no pool {name}")
        return self.pools[name].model_copy(deep=True)

    def list_pools(self) -> list[Pool]:
        return [self.pools[name].model_copy(deep=True) for name in sorted(self.pools)]

    def delete_pool(self, name: str) -> None:
        self.get_pool(name)
        del self.pools[name]
        self.workers = {key: w for key, w in self.workers.items() if key[0] != name}
        self.writes += 1

    def find_flow_runs(self, ref: str, *, limit: int) -> list[FlowRun]:
        lowered = ref.lower()
        found = [run for run in self.runs.values()
                 if run.name == ref or (len(ref) >= 4 and run.id.startswith(lowered))
                 or (len(ref) >= 6 and run.id.endswith(lowered))]
        found.sort(key=lambda run: (run.scheduled_at or NOW, run.id), reverse=True)
        return [run.model_copy(deep=True) for run in found[:limit]]

    def delete_flow_run(self, run: FlowRun) -> None:
        stored = self.get_flow_run(run.id)
        if stored.version != run.version:
            raise Conflict(f"flow run {run.id} changed")
        del self.runs[run.id]
        self.history.pop(run.id, None)
        self.transition_ids = {t for t in self.transition_ids if t[0] != run.id}
        self.idempotency_keys = {k: v for k, v in self.idempotency_keys.items() if v != run.id}
        self.task_runs = {k: t for k, t in self.task_runs.items() if t.flow_run_id != run.id}
        self.writes += 1

    def upsert_worker(self, worker: Worker) -> Worker:
        key = (worker.pool, worker.name)
        old = self.workers.get(key)
        given = worker.model_dump(exclude_none=True)
        merged = Worker(**{**(old.model_dump() if old else {}), **given})
        self.workers[key] = merged
        self.writes += 1
        return merged.model_copy(deep=True)

    def list_workers(self, pool: str) -> list[Worker]:
        return [w.model_copy(deep=True) for (p, _), w in sorted(self.workers.items()) if p == pool]

    # worker sessions (per-worker heartbeats)
    def get_flow_runs(self, flow_run_ids: Sequence[str]) -> list[FlowRun]:
        return [self.runs[i].model_copy(deep=True) for i in dict.fromkeys(flow_run_ids)
                if i in self.runs]

    def get_worker_session(self, session: str) -> WorkerSession | None:
        return self.sessions.get(session)

    def put_worker_session(self, session: WorkerSession, *,
                           previous_renewed_at: datetime | None,
                           alive_at: datetime) -> WorkerSession:
        stored = self.sessions.get(session.session)
        if previous_renewed_at is None:
            fresh = stored is None
        else:
            fresh = (stored is not None and stored.renewed_at == previous_renewed_at
                     and stored.lease_expires_at >= alive_at)
        if not fresh:
            raise Conflict(f"worker session {session.session} changed or expired meanwhile")
        self.sessions[session.session] = replace(session, held=dict(session.held))
        self.writes += 1
        return session


class _Message:
    def __init__(self, message_id: str, body: str, visible_at: datetime) -> None:
        self.message_id = message_id
        self.body = body
        self.visible_at = visible_at
        self.receive_count = 0
        self.receipt_handle: str | None = None


class InMemoryRunQueue:
    """At-least-once queues with delays, visibility timeouts and a DLQ, on an injectable clock."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self.queues: dict[str, list[_Message]] = {}
        self.dead_letters: dict[str, list[_Message]] = {}
        self.max_receive_counts: dict[str, int] = {}
        #: Every send as (pool, body, delay_seconds), for assertions.
        self.sent: list[tuple[str, str, int]] = []
        self.fail_sends = False
        self._ids = itertools.count(1)

    def _queue(self, pool: str) -> list[_Message]:
        if pool not in self.queues:
            raise NotFound(f"no queue for pool {pool}")
        return self.queues[pool]

    def create_pool_queue(self, pool: str, *, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT):
        self.queues.setdefault(pool, [])
        self.dead_letters.setdefault(pool, [])
        self.max_receive_counts[pool] = max_receive_count
        return PoolQueue(pool=pool, queue_url=f"memory://{pool}", dlq_url=f"memory://{pool}-dlq")

    def declared_pool_type(self, pool: str) -> str | None:
        return None

    def delete_pool_queue(self, pool: str) -> None:
        self.queues.pop(pool, None)
        self.dead_letters.pop(pool, None)
        self.max_receive_counts.pop(pool, None)

    def send(self, pool: str, body: str, *, delay_seconds: int = 0) -> str:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay_seconds {delay_seconds} is outside 0..{MAX_DELAY_SECONDS}")
        if self.fail_sends:
            raise ServiceUnavailable("the queue is down (test)")
        message = _Message(f"m{next(self._ids)}", body,
                           self.clock() + timedelta(seconds=delay_seconds))
        self._queue(pool).append(message)
        self.sent.append((pool, body, delay_seconds))
        return message.message_id

    def receive(self, pool: str, *, max_messages: int = 1, wait_seconds: int = 0,
                visibility_timeout: int | None = None) -> list[QueueMessage]:
        now = self.clock()
        received = []
        for message in list(self._queue(pool)):
            if len(received) == max_messages:
                break
            if message.visible_at > now:
                continue
            if message.receive_count >= self.max_receive_counts[pool]:
                self.queues[pool].remove(message)
                self.dead_letters[pool].append(message)
                continue
            message.receive_count += 1
            message.receipt_handle = f"{message.message_id}:{message.receive_count}"
            message.visible_at = now + timedelta(seconds=visibility_timeout or 30)
            received.append(QueueMessage(message.message_id, message.body,
                                         message.receipt_handle, message.receive_count))
        return received

    def _by_handle(self, pool: str, receipt_handle: str) -> _Message | None:
        return next((m for m in self._queue(pool) if m.receipt_handle == receipt_handle), None)

    def change_visibility(self, pool: str, receipt_handle: str, timeout_seconds: int) -> None:
        message = self._by_handle(pool, receipt_handle)
        if message is None:
            raise NotFound("no such in-flight message")
        message.visible_at = self.clock() + timedelta(seconds=timeout_seconds)

    def delete(self, pool: str, receipt_handle: str) -> None:
        message = self._by_handle(pool, receipt_handle)
        if message is not None:
            self.queues[pool].remove(message)

    def depth(self, pool: str) -> QueueDepth:
        now = self.clock()
        messages = self._queue(pool)
        visible = sum(1 for m in messages if m.visible_at <= now)
        in_flight = sum(1 for m in messages if m.visible_at > now and m.receive_count > 0)
        delayed = sum(1 for m in messages if m.visible_at > now and m.receive_count == 0)
        return QueueDepth(visible, in_flight, delayed, len(self.dead_letters[pool]))


class InMemoryLogSink:
    def __init__(self) -> None:
        self.records: dict[str, list[tuple[int, LogRecord]]] = defaultdict(list)
        self._seq = itertools.count()

    def append(self, flow_run_id: str, records: Sequence[LogRecord]) -> int:
        known = {record.id for _, record in self.records[flow_run_id]}
        new = [r for r in records if r.id not in known]
        self.records[flow_run_id].extend((next(self._seq), r.model_copy()) for r in new)
        return len(new)

    def delete(self, flow_run_id: str) -> None:
        self.records.pop(flow_run_id, None)

    def read(self, flow_run_id: str, *, cursor: str | None = None, limit: int = 100):
        ordered = sorted(self.records.get(flow_run_id, []), key=lambda e: (e[1].timestamp, e[0]))
        start = int(cursor) if cursor else 0
        chunk = [record for _, record in ordered[start : start + limit]]
        return Page(items=chunk, next_cursor=str(start + len(chunk)))


class RecordingMetrics:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, float, dict[str, str]]] = []
        self.flushed = 0

    def count(self, name: str, value: float = 1, dimensions: Mapping[str, str] | None = None):
        self.recorded.append(("count", name, value, dict(dimensions or {})))

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str] | None = None):
        self.recorded.append(("gauge", name, value, dict(dimensions or {})))

    def timing(self, name: str, milliseconds: float, dimensions: Mapping[str, str] | None = None):
        self.recorded.append(("timing", name, milliseconds, dict(dimensions or {})))

    def flush(self) -> None:
        self.flushed += 1

    def total(self, name: str) -> float:
        return sum(value for kind, n, value, _ in self.recorded if n == name)


class InMemoryEventStore:
    """`EventStore` and `EventPublisher` in one: events kept in a list, published ones too."""

    def __init__(self) -> None:
        self.stored: dict[str, object] = {}
        self.published: list = []

    def append(self, events: Sequence) -> None:
        for event in events:
            self.stored.setdefault(event.id, event)

    def list_events(self, *, since=None, until=None, names=None, resource_id=None, limit: int,
                    cursor: str | None = None) -> Page:
        chosen = [
            e for e in self.stored.values()
            if (since is None or e.occurred >= since) and (until is None or e.occurred < until)
            and (not names or any(e.name.startswith(n) for n in names))
            and (resource_id is None
                 or any(r.id == resource_id for r in (e.resource, *e.related)))
        ]
        chosen.sort(key=lambda e: (e.occurred, e.id), reverse=since is None)
        return _page(chosen, limit, cursor)

    def purge_before(self, cutoff: datetime) -> int:
        old = [i for i, e in self.stored.items() if e.occurred < cutoff]
        for event_id in old:
            del self.stored[event_id]
        return len(old)

    def publish(self, events: Sequence) -> None:
        self.published.extend(events)

    def names(self) -> list[str]:
        """Names of the stored events, in the order they were recorded."""
        return [e.name for e in self.stored.values()]

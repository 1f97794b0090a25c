"""The ports of the control plane: what the use cases need from storage, queues, logs and metrics.

Two sets of adapters implement these Protocols — DynamoDB/SQS/CloudWatch for AWS and SQLite for
the embedded server — and one contract test suite runs against both, so the docstrings below are
the specification: same results, same ordering, same errors.

Shared rules for every port:

* Models come from `sluice.models`; an adapter returns new objects, never the caller's instances.
* Paginated reads take `limit` (1..`sluice.models.MAX_PAGE_LIMIT`) and an opaque `cursor` string
  from a previous page of the *same* query, and return `sluice.models.Page`. A page may hold
  fewer than `limit` items even when more exist (DynamoDB filters after reading); only
  `next_cursor is None` means "no more". A cursor an adapter cannot decode raises
  `sluice.exceptions.BadRequest`.
* Errors are the ones of `sluice.exceptions`: `NotFound`, `Conflict` (a lost compare-and-set or
  a duplicate), `Throttled` / `ServiceUnavailable` (the backend pushed back; retry later). An
  adapter never leaks a backend exception type (botocore, sqlite3) to the caller.
* Datetimes are timezone-aware UTC in and out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sluice.models import (
    Deployment,
    FlowRun,
    LogRecord,
    Page,
    Pool,
    SluiceEvent,
    State,
    StateType,
    TaskRun,
    Worker,
)

#: SQS delivers a message at most 15 minutes after it was sent (`DelaySeconds` 0..900):
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html
MAX_DELAY_SECONDS = 900
#: SQS ReceiveMessage returns at most 10 messages and long-polls at most 20 seconds:
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
MAX_RECEIVE_MESSAGES = 10
MAX_WAIT_SECONDS = 20
#: A message's visibility timeout ranges 0 s..12 h:
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
MAX_VISIBILITY_TIMEOUT_SECONDS = 12 * 60 * 60
#: Deliveries of one message before SQS moves it to the pool's dead-letter queue (redrive policy
#: maxReceiveCount; https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html).
DEFAULT_MAX_RECEIVE_COUNT = 5
#: Shortest id prefix and id suffix `RunStore.find_flow_runs` matches (ids start with a
#: timestamp, so recent runs share long prefixes and are told apart by their end).
MIN_ID_PREFIX_CHARS = 4
MIN_ID_SUFFIX_CHARS = 6
#: Runs holding a worker slot (and a concurrency slot): claimed and not finished.
ACTIVE_STATE_TYPES = frozenset(
    {StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING}
)


@dataclass(frozen=True)
class FlowRunFilter:
    """Which flow runs `RunStore.list_flow_runs` and `count_flow_runs` return (all fields AND)."""

    flow_name: str | None = None
    deployment_id: str | None = None
    pool: str | None = None
    #: Any of these state types; None or empty means every type.
    state_types: frozenset[StateType] | None = None
    #: Half-open range on `FlowRun.scheduled_at`: after <= scheduled_at < before.
    scheduled_after: datetime | None = None
    scheduled_before: datetime | None = None

    #: Only runs whose current attempt was admitted under this kind of concurrency limit
    #: ("deployment" or "pool"; `FlowRun.slot_scopes`).
    holds_slot_of: str | None = None
    #: Only runs carrying every one of these tags (the console's tag filter).
    tags: frozenset[str] | None = None
    #: Only subflow runs of this flow run (`FlowRun.parent_flow_run_id`).
    parent_flow_run_id: str | None = None

    @classmethod
    def slot_holders(cls, *, deployment_id: str | None = None, pool: str | None = None
                     ) -> FlowRunFilter:
        """The runs holding a slot of one deployment's or one pool's concurrency limit: active,
        and admitted under that limit. What limits count, and `RunStore.count_flow_runs` must
        count it exactly."""
        if (deployment_id is None) == (pool is None):
            raise ValueError("name either a deployment or a pool")
        return cls(deployment_id=deployment_id, pool=pool, state_types=ACTIVE_STATE_TYPES,
                   holds_slot_of="deployment" if deployment_id is not None else "pool")

    @property
    def slot_limit(self) -> tuple[str, str] | None:
        """("deployment", id) or ("pool", name) when this is exactly a `slot_holders` filter."""
        if self.holds_slot_of is None:
            return None
        field = "deployment_id" if self.holds_slot_of == "deployment" else "pool"
        name = getattr(self, field)
        if name is None or self != FlowRunFilter.slot_holders(**{field: name}):
            return None
        return (self.holds_slot_of, name)


#: How long a worker session's item outlives its lease (its TTL): by then every run it held was
#: crashed or moved on (the monitor acts `duration + margin` after the last renewal).
WORKER_SESSION_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class WorkerSession:
    """The lease of one worker process (a session) over the runs it holds, as its last
    per-worker heartbeat renewed it (`service.worker_leases`). Control-plane time."""

    session: str
    pool: str
    worker: str
    renewed_at: datetime
    lease_expires_at: datetime
    #: flow run id -> the lease of the attempt this session renewed at `renewed_at`.
    held: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowRunCounts:
    """What `RunStore.count_flow_runs_by_bucket` answers: runs per (time bucket, state type).

    Bucket `i` holds the runs with `origin + i * bucket_seconds <= scheduled_at < origin +
    (i + 1) * bucket_seconds`; buckets and state types without runs are absent."""

    counts: Mapping[tuple[int, StateType], int]
    #: Runs of the window whose current state is named Late (type Scheduled).
    late: int = 0
    #: The adapter stopped reading at its bound: the counts cover only part of the window.
    truncated: bool = False

    @staticmethod
    def tally(times_and_types: Iterable[tuple[datetime, StateType]], *, origin: datetime,
              bucket_seconds: int) -> dict[tuple[int, StateType], int]:
        """Counts per (bucket, state type) of runs given as (scheduled_at, state type), for
        adapters that count in Python (DynamoDB, fakes); times before `origin` are skipped."""
        counts: dict[tuple[int, StateType], int] = {}
        for moment, state_type in times_and_types:
            offset = (moment - origin).total_seconds()
            if offset < 0:
                continue
            key = (int(offset // bucket_seconds), StateType(state_type))
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass(frozen=True)
class PoolQueue:
    """Where a pool's queue and its dead-letter queue live (SQS URLs, or local URLs)."""

    pool: str
    queue_url: str
    dlq_url: str


@dataclass(frozen=True)
class QueueMessage:
    """One message received from a pool queue."""

    message_id: str
    body: str
    #: Changes on every receive; only the latest one may change visibility or delete.
    receipt_handle: str
    #: How many times this message has been received, this receive included (1 on the first).
    receive_count: int


@dataclass(frozen=True)
class QueueDepth:
    """Approximate message counts of a pool queue (SQS's ApproximateNumberOfMessages* family)."""

    visible: int
    in_flight: int
    delayed: int
    dead_letter: int


class ReceivedJson:
    """The JSON text of task-run records as a request carried them, each already validated on
    its own as the model it stands for (the events routes' fast path, issue 20). A store that
    keeps each record as its JSON document may store this text instead of serializing the
    model again; reading it back gives the same model. Such a store says so with a class
    attribute `KEEPS_RECEIVED_JSON = True` (the API validates framed bodies record by record
    only then)."""

    __slots__ = ("_texts",)

    def __init__(self, pairs: Iterable[tuple[TaskRun, str]]) -> None:
        # By identity: the models are the very objects of the request's batch (kept here, so
        # no other object can take an id meanwhile).
        self._texts = {id(model): (model, text) for model, text in pairs}

    def get(self, task_run: TaskRun) -> str | None:
        """The text `task_run` was validated from, or None if it came otherwise."""
        entry = self._texts.get(id(task_run))
        return entry[1] if entry is not None and entry[0] is task_run else None

    def __len__(self) -> int:
        return len(self._texts)


@runtime_checkable
class RunStore(Protocol):
    """Metadata of flow runs, task runs, deployments, pools and workers.

    Flow runs are written with compare-and-set on `FlowRun.version`: a write carries the version
    the caller read; the store writes only if the stored version still equals it, stores
    `version + 1`, and returns the stored run. Otherwise it raises `Conflict` and writes nothing.
    """

    # ---- flow runs -----------------------------------------------------------------------------

    def create_flow_run(self, run: FlowRun) -> FlowRun:
        """Insert a new flow run with `version = 1` and `run.state` as its first history entry.

        `run.scheduled_at` is always set by the caller. If `run.idempotency_key` is set it must
        be unique across all flow runs. Insert, key reservation and history entry are atomic.

        Raises `Conflict` (writing nothing) when a run with `run.id` exists or another run holds
        `run.idempotency_key`; the caller then reads the existing run.
        """
        ...

    def get_flow_run(self, flow_run_id: str) -> FlowRun:
        """Return the run. Raises `NotFound` if no run has this id."""
        ...

    def get_flow_run_by_idempotency_key(self, idempotency_key: str) -> FlowRun | None:
        """Return the run created with this idempotency key, or None."""
        ...

    def update_flow_run(self, run: FlowRun) -> FlowRun:
        """Replace a run's fields without a state change (heartbeat_at, enqueued_at, worker ...).

        Compare-and-set: writes only if the stored version equals `run.version`; the stored and
        returned run has `version = run.version + 1`. Appends no history entry. Raises
        `NotFound` if the run does not exist, `Conflict` if its version moved on.
        """
        ...

    def set_flow_run_state(self, run: FlowRun, transition_id: str | None,
                           passed: Sequence[State] = ()) -> FlowRun:
        """Write `run` (carrying its new `state`) and append `run.state` to its history, atomically.

        Compare-and-set as in `update_flow_run` (`version` must still equal `run.version`; the
        result has `version + 1 + len(passed)`). `passed` are states the run went through on
        the way within this one write (a claim that starts the run passes Pending): each gets
        its own history entry, before `run.state`'s. When `transition_id` is given it is
        recorded with the history entry, and a second write with the same (run id,
        transition_id) raises `Conflict` and writes nothing, so a retried request can never
        apply twice. One DynamoDB write (the history inside the run item, schema 3), one SQLite
        transaction: either the run, its history entries and the transition id are all
        written, or none is. Raises `NotFound` if the run does not exist.
        """
        ...

    def has_transition(self, flow_run_id: str, transition_id: str) -> bool:
        """Whether `set_flow_run_state` already recorded this transition id for this run."""
        ...

    def list_state_history(self, flow_run_id: str) -> list[State]:
        """Every state the run has been in, oldest first (the creation state included).

        Returns [] for an unknown run (no NotFound: history is read after the run itself).
        """
        ...

    def list_flow_runs(
        self, flt: FlowRunFilter, *, limit: int, cursor: str | None = None
    ) -> Page[FlowRun]:
        """Runs matching `flt`, newest first: `scheduled_at` descending, ties by `id` descending."""
        ...

    def list_flow_runs_by_state(
        self,
        state_type: StateType,
        *,
        scheduled_before: datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[FlowRun]:
        """Runs currently in `state_type`, oldest first (`scheduled_at` ascending, then `id`).

        With `scheduled_before`, only runs whose `scheduled_at` < it. This is the scheduler's
        and monitor's work list ("Scheduled runs due before T", "Running runs"), so adapters
        back it with an index on (state type, scheduled_at) rather than a scan.
        """
        ...

    def find_flow_runs(self, ref: str, *, limit: int) -> list[FlowRun]:
        """Runs a user may mean by `ref`, newest scheduled first, at most `limit` (1..100).

        A run matches when its id starts with `ref` (at least `MIN_ID_PREFIX_CHARS`
        characters), its id ends with `ref` (at least `MIN_ID_SUFFIX_CHARS`; tables show the
        end of ids), or its name equals `ref`. Id matching ignores case; names do not. The
        full-id case is `get_flow_run`'s. Adapters may bound the search (documented on each)
        and then miss old runs; a full id always works.
        """
        ...

    def delete_flow_run(self, run: FlowRun) -> None:
        """Delete the run with its state history, transition ids, task runs and idempotency key.

        Compare-and-set: deletes only while the stored version equals `run.version` (the caller
        decided on that version that the run may go). Raises `NotFound` when no run has this id
        and `Conflict` when its version moved on. Whether the delete is one atomic step is the
        adapter's to document; the run itself always disappears in one step.
        """
        ...

    def count_flow_runs(self, flt: FlowRunFilter) -> int:
        """How many runs match `flt` (e.g. Running runs of a pool or deployment).

        Exact, read after every committed write, for `FlowRunFilter.slot_holders(...)`:
        concurrency limits rely on it to settle simultaneous claims. Other counts may lag
        writes by up to a second (DynamoDB reads them from an eventually consistent index)."""
        ...

    def count_flow_runs_by_bucket(
        self, flt: FlowRunFilter, *, bucket_seconds: int, now: datetime
    ) -> FlowRunCounts:
        """Runs matching `flt` counted per `scheduled_at` bucket and current state type, plus
        the Late ones (state named Late, so `scheduled_at` before `now`): the console's charts.

        `flt.scheduled_after` (the origin of bucket 0) and `flt.scheduled_before` are set; only
        `flow_name`, `deployment_id` and `pool` may be set beside them. Aggregated in the store
        from an index on the scheduled time, never by returning runs. An adapter that must
        read index entries (DynamoDB) stops at a documented bound and says `truncated`.
        Counts may lag writes by about a second.
        """
        ...

    # ---- task runs -----------------------------------------------------------------------------

    def upsert_task_runs(self, task_runs: Sequence[TaskRun],
                         received: ReceivedJson | None = None) -> int:
        """Store task runs; idempotent by `id`, and a higher `version` wins.

        Each record is written if no task run with its id exists or the stored one has a lower
        `version`; a record with an equal or lower version is ignored (a replayed batch changes
        nothing, a late older record never overwrites a newer one). Records of different flow
        runs may be mixed. Returns how many records were written. Not atomic across records,
        but each record is all-or-nothing. `received`: the records' JSON as the request carried
        it, which an adapter may store as it is (`ReceivedJson`).
        """
        ...

    def add_finished_task_runs(self, task_runs: Sequence[TaskRun],
                               received: ReceivedJson | None = None) -> int:
        """Store task runs reported once, already final (`EventsBatch.finished_task_runs`):
        no later record of them follows, so an adapter may pack several into one item (the
        DynamoDB store does). A record that is not final is upserted as by
        `upsert_task_runs`. Listings show them with the others; a task run stored twice (a
        resent batch) is listed with its highest version. Returns how many were stored."""
        ...

    def list_task_runs(
        self, flow_run_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[TaskRun]:
        """Task runs of one flow run ordered by `id` ascending (SDK ids are time-ordered).

        An unknown flow run gives an empty page.
        """
        ...

    # ---- deployments ---------------------------------------------------------------------------

    def upsert_deployment(self, deployment: Deployment) -> Deployment:
        """Create or replace the deployment named (`flow_name`, `name`).

        If one exists with that pair, its `id`, `created` and `created_by` are kept and every
        other field is replaced by `deployment`'s; otherwise `deployment` is inserted as given
        (its `id` must be new). Returns the stored deployment. Concurrent upserts of the same
        pair end with exactly one deployment.
        """
        ...

    def get_deployment(self, deployment_id: str) -> Deployment:
        """Return the deployment. Raises `NotFound`."""
        ...

    def get_deployment_by_name(self, flow_name: str, name: str) -> Deployment:
        """Return the deployment named (`flow_name`, `name`). Raises `NotFound`."""
        ...

    def list_deployments(
        self, *, flow_name: str | None = None, limit: int, cursor: str | None = None
    ) -> Page[Deployment]:
        """Deployments (of one flow if given) ordered by (`flow_name`, `name`) ascending."""
        ...

    def update_deployment(self, deployment: Deployment) -> Deployment:
        """Replace the stored deployment with the same `id` (its name pair must not change).

        Raises `NotFound` if it does not exist and `Conflict` if the name pair changed. Returns
        the stored deployment.
        """
        ...

    def delete_deployment(self, deployment_id: str) -> None:
        """Delete the deployment and free its (flow_name, name). Raises `NotFound`.

        Its flow runs stay (they keep `deployment_id` for history).
        """
        ...

    # ---- pools and workers ---------------------------------------------------------------------

    def upsert_pool(self, pool: Pool) -> Pool:
        """Create or replace the pool named `pool.name`, keeping `created` of an existing one.

        Stores the configuration fields only (name, concurrency_limit, description, queue_url,
        dlq_url, created); the live fields (queue_depth, workers, running) are never stored and
        come back None/empty.
        """
        ...

    def get_pool(self, name: str) -> Pool:
        """Return the pool. Raises `NotFound`."""
        ...

    def list_pools(self) -> list[Pool]:
        """Every pool ordered by name (pools are few; no pagination)."""
        ...

    def delete_pool(self, name: str) -> None:
        """Delete the pool's record and its workers. Raises `NotFound`. Its runs and
        deployments stay (the service decides whether the pool may go)."""
        ...

    def upsert_worker(self, worker: Worker) -> Worker:
        """Record a worker as seen: create or replace the worker (`pool`, `name`).

        The caller sets `last_seen`; fields passed as None keep their stored value.
        """
        ...

    def list_workers(self, pool: str) -> list[Worker]:
        """Workers of a pool ordered by name; [] for an unknown pool."""
        ...

    # ---- worker sessions (per-worker heartbeats) -------------------------------------------

    def get_flow_runs(self, flow_run_ids: Sequence[str]) -> list[FlowRun]:
        """The runs of `flow_run_ids` that exist, in that order, read with strong consistency
        (one batch: DynamoDB BatchGetItem). Unknown or unreadable ones are left out."""
        ...

    def get_worker_session(self, session: str) -> WorkerSession | None:
        """The session's lease as last written (strongly consistent), or None."""
        ...

    def put_worker_session(self, session: WorkerSession, *,
                           previous_renewed_at: datetime | None,
                           alive_at: datetime) -> WorkerSession:
        """Write a session's renewal, compare-and-set: with `previous_renewed_at` None only if
        the session does not exist; else only if its stored `renewed_at` equals it and its
        stored lease has not expired at `alive_at` (an expired session is never revived: its
        holder has fenced itself). Raises `Conflict` and writes nothing otherwise. The item
        expires (TTL) `WORKER_SESSION_KEPT` after `session.lease_expires_at`."""
        ...


@runtime_checkable
class RunQueue(Protocol):
    """A queue (and a dead-letter queue) per work pool: SQS in AWS, SQLite locally.

    Delivery is at least once: a received message becomes invisible for its visibility timeout
    and reappears unless deleted. A message received more than the pool's `max_receive_count`
    times moves to the dead-letter queue instead of being delivered again.
    """

    def create_pool_queue(
        self, pool: str, *, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    ) -> PoolQueue:
        """Create the pool's queue and DLQ with its redrive policy; idempotent."""
        ...

    def delete_pool_queue(self, pool: str) -> None:
        """Delete the pool's queue and DLQ with their messages; idempotent (a pool without
        queues is not an error). Raises `Conflict` for queues this adapter does not own (the
        AWS stack's own pools)."""
        ...

    def declared_pool_type(self, pool: str) -> str | None:
        """The pool kind its queue was created for outside the control plane (the `LambdaPool`
        and `FargatePool` constructs tag their queues `POOL_TYPE_TAG`), or None: a pool whose
        record does not exist yet is adopted with that type."""
        ...

    def send(self, pool: str, body: str, *, delay_seconds: int = 0) -> str:
        """Send one message, invisible for `delay_seconds`; returns its message id.

        `delay_seconds` must be within 0..`MAX_DELAY_SECONDS` (ValueError otherwise). Raises
        `NotFound` if the pool has no queue.
        """
        ...

    def receive(
        self,
        pool: str,
        *,
        max_messages: int = 1,
        wait_seconds: int = 0,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        """Receive up to `max_messages` (1..10) visible messages, oldest first where possible.

        Waits up to `wait_seconds` (0..20) for a first message; returns [] if none arrives.
        Each message becomes invisible for `visibility_timeout` seconds (the queue's default
        when None) and its `receive_count` goes up by one. Raises `NotFound` for an unknown pool
        and `ValueError` for an option outside its range. Delivery is at least once: two
        concurrent receivers may, rarely, get the same message (SQS standard queues do); the
        run's claim, not the queue, keeps it from running twice.
        """
        ...

    def change_visibility(self, pool: str, receipt_handle: str, timeout_seconds: int) -> None:
        """Make a received message invisible for `timeout_seconds` from now (0 = visible now).

        Raises `NotFound` if the message was deleted or the handle is not its latest receipt.
        """
        ...

    def delete(self, pool: str, receipt_handle: str) -> None:
        """Delete a received message. Deleting an already deleted message is not an error; with
        an older receipt handle the message may or may not be deleted (as in SQS)."""
        ...

    def depth(self, pool: str) -> QueueDepth:
        """Approximate counts of the queue and its DLQ. Raises `NotFound` for an unknown pool."""
        ...


@runtime_checkable
class LogSink(Protocol):
    """Log lines of flow runs: CloudWatch Logs (a stream per run) in AWS, SQLite locally."""

    def append(self, flow_run_id: str, records: Sequence[LogRecord]) -> int:
        """Append records of one flow run; idempotent by `LogRecord.id`.

        A record whose id was already appended for this run is ignored (readers never see it
        twice: an adapter that cannot refuse the write, like CloudWatch, drops repeats on read).
        Records may come in any timestamp order. Returns how many records were accepted as new
        (adapters that only dedupe on read return `len(records)`).
        """
        ...

    def read(
        self, flow_run_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[LogRecord]:
        """Records of a run ordered by (`timestamp`, append order), starting after `cursor`.

        `next_cursor` is always a string (never None) so a follower can keep polling: records
        appended later show up on a later read with it. An empty `items` means "caught up for
        now" (adapters loop over their own empty pages). A run without logs gives an empty page,
        not `NotFound`. A record appended later with a timestamp before the cursor's position
        may be skipped by that cursor.
        """
        ...

    def delete(self, flow_run_id: str) -> None:
        """Delete every record of a run; idempotent (a run without logs is not an error)."""
        ...


@runtime_checkable
class Metrics(Protocol):
    """Operational metrics: CloudWatch EMF through Powertools in AWS, in-memory or no-op locally.

    Metric names are CamelCase nouns ("FlowRunsCreated"); dimensions are low-cardinality
    (pool, state type), never run ids.
    """

    def count(
        self, name: str, value: float = 1, dimensions: Mapping[str, str] | None = None
    ) -> None:
        """Add `value` to a counter."""
        ...

    def gauge(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        """Record the current value of something (queue depth, runs in a state)."""
        ...

    def timing(
        self, name: str, milliseconds: float, dimensions: Mapping[str, str] | None = None
    ) -> None:
        """Record a duration in milliseconds."""
        ...

    def flush(self) -> None:
        """Emit everything recorded so far (end of a Lambda invocation); never raises."""
        ...


@runtime_checkable
class BundleStore(Protocol):
    """Deployment code bundles in the user's own storage: the stack's S3 bucket (presigned URLs)
    in AWS, files in the server's data directory locally. Bundles are immutable and addressed
    by their SHA-256, so a URL for one never goes stale in content."""

    def exists(self, sha256: str) -> bool:
        """Whether the bundle was uploaded."""
        ...

    def upload_url(self, sha256: str, size: int) -> str:
        """A URL the client PUTs the zip to (valid for a few minutes); it takes exactly `size`
        bytes hashing to `sha256` (signed into the URL in AWS, checked on write locally)."""
        ...

    def upload_headers(self, sha256: str, size: int) -> dict[str, str]:
        """The headers the client must send with that PUT (part of the signature in AWS)."""
        ...

    def download_url(self, sha256: str) -> str:
        """A URL a worker GETs the zip from (valid for a few minutes)."""
        ...


@runtime_checkable
class EventStore(Protocol):
    """Sluice events (`sluice.models.SluiceEvent`) kept for reading back (`GET /events`,
    `sluice events ls|tail`) for a retention: SQLite embedded, DynamoDB with a TTL on AWS."""

    def append(self, events: Sequence[SluiceEvent]) -> None:
        """Store events; idempotent by `SluiceEvent.id` (a repeated id changes nothing)."""
        ...

    def list_events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        names: Sequence[str] | None = None,
        resource_id: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[SluiceEvent]:
        """Events with `since <= occurred < until`, whose name starts with one of `names` (any
        name when None or empty) and, with `resource_id`, whose resource or a related resource
        has that id. Ordered by (`occurred`, `id`) ascending when `since` is given (a follower
        tails with it), descending (newest first) otherwise; the cursor continues that order."""
        ...

    def purge_before(self, cutoff: datetime) -> int:
        """Delete events that occurred before `cutoff`; returns how many (adapters that expire
        events themselves, like DynamoDB's TTL, return 0)."""
        ...


@runtime_checkable
class EventPublisher(Protocol):
    """Where events go beyond the control plane: EventBridge on AWS, nowhere embedded."""

    def publish(self, events: Sequence[SluiceEvent]) -> None:
        """Send events on; raises on failure (the caller logs it and goes on)."""
        ...


class DiscardEvents:
    """An `EventStore` and `EventPublisher` that keeps nothing: the default of ports built
    without events (older composition roots, tests that do not look at events)."""

    def append(self, events: Sequence[SluiceEvent]) -> None:
        return None

    def list_events(self, *, since: datetime | None = None, until: datetime | None = None,
                    names: Sequence[str] | None = None, resource_id: str | None = None,
                    limit: int, cursor: str | None = None) -> Page[SluiceEvent]:
        return Page(items=[], next_cursor=None)

    def purge_before(self, cutoff: datetime) -> int:
        return 0

    def publish(self, events: Sequence[SluiceEvent]) -> None:
        return None


if TYPE_CHECKING:  # the automations package imports the service layer, which imports this
    from .automations.ports import AutomationStore


@dataclass(frozen=True)
class ControlPlanePorts:
    """The adapters a composition root (Lambda handler, embedded server) builds once."""

    store: RunStore
    queue: RunQueue
    logs: LogSink
    metrics: Metrics
    #: None where bundles are not configured (the bundle routes then answer 400 saying so).
    bundles: BundleStore | None = None
    events: EventStore = field(default_factory=DiscardEvents)
    publisher: EventPublisher = field(default_factory=DiscardEvents)
    #: Automations and their action receipts, set by the composition root; None: no
    #: automations (a bare test fake; `automations.ports.automation_store` then refuses).
    automations: AutomationStore | None = None
    #: AWS only: the EventBridge rules of deployments' `on_event` (`adapters.aws.event_rules`);
    #: None matches on-event deployments in process (embedded, tests).
    event_rules: Any = None
    #: Refuses requests while the stored data is newer than this code understands
    #: (`migrations.guard.SchemaGuard`); None (fakes, tests): no check.
    schema: Any = None
    # Transitions are applied deep in the use cases, which get the store but not the ports:
    # composition roots attach an `EventRecorder` to the store (`event_log.attach_recorder`).

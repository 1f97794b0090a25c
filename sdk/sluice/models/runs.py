"""Flow runs, task runs and log records: what the engine records and the control plane stores."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .bounds import MAX_TAG_CHARS as MAX_TAG_CHARS  # re-exported: it was defined here
from .bounds import StoredFloat
from .states import State

#: Largest JSON-encoded parameters of one flow run (bytes). DynamoDB items stop at 400 KB
#: (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html); this
#: leaves room for the rest of the item and for indexes.
MAX_PARAMETERS_BYTES = 64 * 1024
#: Longest log message stored; CloudWatch Logs allows 256 KB per event
#: (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html).
MAX_LOG_MESSAGE_CHARS = 32 * 1024
#: Most tags on one run or deployment (the longest tag: `bounds.MAX_TAG_CHARS`).
MAX_TAGS = 32


class LogLevel(str, enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class FlowRun(BaseModel):
    """One execution of a flow: the record users see in `sluice flow-run ls`."""

    model_config = ConfigDict(extra="ignore")

    id: str
    flow_name: str
    name: str | None = None
    deployment_id: str | None = None
    pool: str | None = None
    state: State
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    scheduled_at: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_count: int = 0
    #: How many times the control plane may retry this run after Failed/Crashed.
    retries: int = 0
    #: Read finite (`bounds.finite`): a stored infinity must not stop the run being written.
    retry_delay_seconds: StoredFloat = 0
    parent_flow_run_id: str | None = None
    parent_task_run_id: str | None = None
    #: The pool whose workers and flow processes may reach a subflow run through the pool's
    #: routes (`/pools/{pool}/flow-runs/...`): set when a flow process of that pool created it.
    #: Runs of a deployment are reached through `pool`.
    worker_pool: str | None = None
    idempotency_key: str | None = None
    created_by: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    worker: str | None = None
    heartbeat_at: datetime | None = None
    #: Store revision, bumped on every write: the compare-and-set token of state changes.
    version: int = 0
    #: Proof of the latest claim; writes by the attempt's worker must carry it. The API never
    #: shows it outside the claim answer. Cleared when the run goes back to Scheduled.
    lease: str | None = None
    #: The `claim_id` of the claim that started the current attempt (never shown by the API).
    claim_id: str | None = None
    #: When the current attempt's queue message was sent; None while it still has to be sent.
    enqueued_at: datetime | None = None
    #: The concurrency limits ("deployment", "pool") the current attempt was admitted under: the
    #: run holds a slot of each while its state is active. Set by the claim.
    slot_scopes: tuple[str, ...] = ()
    #: When the current attempt's lease runs out unless renewed (set by the claim, the create of
    #: a run its creator executes, and every heartbeat; control-plane time). The monitor
    #: declares the attempt dead only once this is past by the lease's margin.
    lease_expires_at: datetime | None = None
    #: The lease of the attempt that ended last (never shown by the API): its last log lines,
    #: which arrive after its final state, are still taken.
    ended_lease: str | None = None
    #: The worker session whose per-worker heartbeats renew the current attempt's lease (set by
    #: the claim; None: the attempt renews through per-run heartbeats). Never shown by the API.
    lease_session: str | None = None

    def reachable_by_pool(self, pool: str) -> bool:
        """Whether workers of `pool` (and their flow processes) may reach this run."""
        return (self.pool or self.worker_pool) == pool

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return None


class TaskRun(BaseModel):
    """One execution of a task inside a flow run (orchestrated client side, reported in batches)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    flow_run_id: str
    task_name: str
    #: Stable name within the flow run ("extract-3"): the n-th call of this task in the run.
    name: str
    task_key: str = ""
    state: State
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_count: int = 0
    tags: list[str] = Field(default_factory=list)
    cache_key: str | None = None
    parent_task_run_id: str | None = None
    upstream_task_run_ids: list[str] = Field(default_factory=list)
    #: Where the persisted result lives (a storage key, never the value itself).
    result_key: str | None = None
    #: Monotonic per task run: a later record replaces an earlier one, never the reverse.
    version: int = 0


class LogRecord(BaseModel):
    """One log line of a flow run (optionally of one of its task runs)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    flow_run_id: str
    task_run_id: str | None = None
    timestamp: datetime
    level: LogLevel = LogLevel.INFO
    logger: str = ""
    message: str = Field(max_length=MAX_LOG_MESSAGE_CHARS)

"""Deployments, work pools and workers."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .bounds import (
    MAX_BACKFILL_RUNS,
    MAX_CONCURRENCY_LIMIT,
    MAX_LATENESS_SECONDS,
    MAX_RETRIES,
    MAX_RETRY_DELAY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    StoredFloat,
)
from .names import POOL_NAME_PATTERN  # noqa: F401 - importable from here, as it always was
from .names import (
    ClientId,
    DeploymentName,
    FlowName,
    Parameters,
    PoolName,
    PrintableText,
    RunName,
    Tag,
    WorkerName,
    check_name,
    check_parameter_names,
    custom_validator,
)
from .automations import MAX_ACTIONS, Action, Trigger
from .sources import check_code_source, check_entrypoint

DEFAULT_POOL = "default"


class SourceKind(str, enum.Enum):
    LOCAL = "local"
    GIT = "git"
    BUNDLE = "bundle"


class CodeSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: SourceKind = SourceKind.LOCAL
    path: str | None = None
    repository: str | None = None
    ref: str | None = None
    subdirectory: str | None = None
    bundle_key: str | None = None
    bundle_sha256: str | None = None
    requirements: str | None = None


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    cron: str | None = None
    #: 1 s to `MAX_INTERVAL_SECONDS`: checked by the control plane (`validate_schedule`), not
    #: here, because stored deployments are read with this model too (a stored infinity or NaN
    #: reads as a finite number, which that check refuses).
    interval_seconds: StoredFloat | None = Field(default=None, gt=0)
    anchor: datetime | None = None
    timezone: str = "UTC"
    parameters: dict[str, Any] = Field(default_factory=dict)
    active: bool = True


def _check_schedule(schedule: Schedule) -> Schedule:
    """A schedule as it enters: a valid id (it names its runs) and printable parameter names."""
    if schedule.id is not None:
        check_name(schedule.id, "schedule")
    check_parameter_names(schedule.parameters)
    return schedule


#: A schedule in a request (`Schedule` itself is also how stored schedules are read).
ScheduleInput = Annotated[Schedule, custom_validator(_check_schedule)]
#: A code source in a request (stored ones are read as they are).
CodeSourceInput = Annotated[CodeSource, custom_validator(check_code_source)]
#: `path/to/file.py:flow_function` inside the project, or `package.module:flow_function`.
Entrypoint = Annotated[str, Field(min_length=1, max_length=1024),
                       custom_validator(check_entrypoint)]


class CollisionStrategy(str, enum.Enum):
    ENQUEUE = "enqueue"
    CANCEL_NEW = "cancel_new"


#: Automations one deployment may own (`triggers=[...]`).
MAX_DEPLOYMENT_TRIGGERS = 20
#: EventBridge refuses longer event patterns (PutRule `EventPattern`, 4096 characters):
#: https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html
MAX_EVENT_PATTERN_CHARS = 4096
#: The `deployment` of a `run-deployment` action in a deployment's trigger that means "the
#: deployment owning this trigger" (also what an omitted or empty one means).
THIS_DEPLOYMENT = "@this"


class DeploymentTrigger(BaseModel):
    """An automation owned by a deployment (`Flow.deploy(triggers=[...])`): stored as the
    automation `<flow>/<deployment>#<n>`, replaced when the deployment is deployed again and
    deleted with it. A `run-deployment` action with an empty `deployment` runs this one."""

    model_config = ConfigDict(extra="forbid")

    trigger: Trigger
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS)
    description: str | None = Field(default=None, max_length=1000)
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _run_this_deployment(cls, data: Any) -> Any:
        """A `run-deployment` action written without a deployment runs the owning one."""
        if isinstance(data, dict) and isinstance(data.get("actions"), list):
            data = {**data, "actions": [
                {**a, "deployment": THIS_DEPLOYMENT}
                if isinstance(a, dict) and a.get("type") == "run-deployment"
                and not a.get("deployment") else a
                for a in data["actions"]]}
        return data


class OnEvent(BaseModel):
    """Start a run of the deployment for each event matching `pattern` (an EventBridge event
    pattern over `{source, detail-type, detail, time, id, account, region, resources}`), with
    `parameters` whose strings are templates over `event` (`{{ event.detail.object.key }}`)."""

    model_config = ConfigDict(extra="forbid")

    pattern: dict[str, Any] = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Names, paths and sources are checked here, where they enter (`sluice.models.names`,
    # `sluice.models.sources`); `Deployment` reads stored ones as they are.
    flow_name: FlowName
    name: DeploymentName
    entrypoint: Entrypoint
    pool: PoolName = DEFAULT_POOL
    parameters: Parameters = Field(default_factory=dict)
    parameter_schema: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    description: str | None = Field(default=None, max_length=4096)
    version: PrintableText | None = Field(default=None, max_length=256)
    source: CodeSourceInput = Field(default_factory=CodeSource)
    schedules: list[ScheduleInput] = Field(default_factory=list)
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    collision_strategy: CollisionStrategy = CollisionStrategy.ENQUEUE
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    retry_delay_seconds: float = Field(default=0, ge=0, le=MAX_RETRY_DELAY_SECONDS,
                                       allow_inf_nan=False)
    catchup: bool = False
    max_lateness_seconds: float | None = Field(default=None, gt=0, le=MAX_LATENESS_SECONDS,
                                               allow_inf_nan=False)
    #: Automations this deployment owns (see `DeploymentTrigger`).
    triggers: list[DeploymentTrigger] = Field(default_factory=list,
                                              max_length=MAX_DEPLOYMENT_TRIGGERS)
    #: Runs started by matching events (see `OnEvent`).
    on_event: OnEvent | None = None
    #: The flow's own timeout (its `timeout_seconds`; `sluice deploy --timeout`): a Lambda pool
    #: refuses a deployment that may run longer than `LAMBDA_MAX_RUN_SECONDS`.
    timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS,
                                          allow_inf_nan=False)


class Deployment(DeploymentCreate):
    model_config = ConfigDict(extra="ignore")

    # A stored deployment is read as it was written: the bounds above apply where values enter
    # (create, update), and one written before a bound existed must still be listed, shown and
    # scheduled (the control plane clamps what it derives from these).
    concurrency_limit: int | None = None
    retries: int = 0
    retry_delay_seconds: StoredFloat = 0
    max_lateness_seconds: StoredFloat | None = None
    timeout_seconds: StoredFloat | None = None
    # Likewise names, paths and sources: a record stored before `sluice.models.names` is still
    # listed, shown and deleted (by id when its name holds characters now refused).
    flow_name: str
    name: str
    entrypoint: str
    pool: str = DEFAULT_POOL
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    version: str | None = None
    source: CodeSource = Field(default_factory=CodeSource)
    schedules: list[Schedule] = Field(default_factory=list)

    id: str
    created: datetime | None = None
    updated: datetime | None = None
    created_by: str | None = None


class DeploymentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: Parameters | None = None
    tags: list[Tag] | None = None
    description: str | None = None
    schedules: list[ScheduleInput] | None = None
    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    collision_strategy: CollisionStrategy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS,
                                          allow_inf_nan=False)


class DeploymentRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: Parameters = Field(default_factory=dict)
    scheduled_at: datetime | None = None
    idempotency_key: str | None = Field(default=None, max_length=256)
    tags: list[Tag] = Field(default_factory=list)
    #: The run's name; absent means a generated adjective-animal name (names need not be
    #: unique: a command given an ambiguous name lists the runs it matches).
    name: RunName | None = None


#: The kinds of pool: `worker` (hosts long-poll its queue: `sluice worker start`), `lambda` (the
#: queue drives a Lambda function that runs each flow in-process, under Lambda's 15-minute limit)
#: and `fargate` (a dispatcher starts one ECS Fargate task per run). See docs/pools.md.
POOL_TYPES: tuple[str, ...] = ("worker", "lambda", "fargate")
PoolType = Literal["worker", "lambda", "fargate"]
#: Longest run a Lambda pool takes: Lambda stops an invocation at 15 minutes (900 s, the
#: function timeout's maximum), and the handler needs a margin to stop the flow and report it.
LAMBDA_MAX_RUN_SECONDS = 900 - 30


class PoolCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Lowercase letters, digits and `-`, at most 40, not ending `-dlq` (`sluice.models.names`).
    name: PoolName
    #: How the pool's runs are started (`POOL_TYPES`); fixed once the pool exists.
    type: PoolType = "worker"
    concurrency_limit: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    description: str | None = Field(default=None, max_length=1024)


class Pool(PoolCreate):
    model_config = ConfigDict(extra="ignore")

    #: Read as stored (see `Deployment`); a pool stored before pool kinds is a worker pool.
    concurrency_limit: int | None = None
    name: str
    type: str = "worker"

    queue_url: str | None = None
    dlq_url: str | None = None
    created: datetime | None = None
    #: Workers' claims of its runs are refused (they wait in Scheduled); runs already claimed
    #: go on. Set with `PATCH /pools/{name}` (`sluice pool pause|resume`).
    paused: bool = False
    #: Filled in by `GET /pools/{name}`.
    queue_depth: int | None = None
    dlq_depth: int | None = None
    workers: list["Worker"] = Field(default_factory=list)
    running: int | None = None


class PoolUpdate(BaseModel):
    """Body of `PATCH /pools/{name}`: the fields to change (omitted ones stay)."""

    model_config = ConfigDict(extra="forbid")

    paused: bool | None = None


class Worker(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    pool: str
    host: str | None = None
    version: str | None = None
    slots: int | None = None
    last_seen: datetime | None = None
    online: bool | None = None


class BackfillRequest(BaseModel):
    """Create the runs a deployment's schedules would have made in [start, end)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    #: Times that already have a run: leave them (none), re-run Failed/Crashed ones (failed),
    #: or re-run every finished one (all).
    reprocess: Literal["none", "failed", "all"] = "none"
    #: Most runs of this backfill active at once (None: all at once).
    max_active: int | None = Field(default=None, ge=1, le=MAX_BACKFILL_RUNS)
    #: Client-chosen id: a repeated request with it changes nothing.
    backfill_id: ClientId | None = None


class BackfillSummary(BaseModel):
    backfill_id: str
    slots: int
    created: int
    reprocessed: int
    existing: int
    released: int
    run_ids: list[str] = Field(default_factory=list)


class WorkerHeartbeat(BaseModel):
    """A worker saying it is alive (every few seconds, busy or idle)."""

    model_config = ConfigDict(extra="forbid")

    name: WorkerName
    host: PrintableText | None = Field(default=None, max_length=256)
    version: PrintableText | None = Field(default=None, max_length=64)
    slots: int | None = Field(default=None, ge=0, le=MAX_CONCURRENCY_LIMIT)


#: Bundles are content-addressed by the SHA-256 of the zip.
SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: Largest bundle `sluice deploy` uploads: code, not data.
MAX_BUNDLE_BYTES = 100 * 1024 * 1024


class BundleUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(gt=0, le=MAX_BUNDLE_BYTES)


class BundleLocation(BaseModel):
    """Where to put or get a bundle: presigned S3 URLs in AWS, the server's own URLs locally."""

    sha256: str
    exists: bool
    upload_url: str | None = None
    #: Headers the upload must carry exactly as given: in AWS the presigned URL signs the size
    #: and the SHA-256 checksum, so S3 takes those bytes and no others.
    upload_headers: dict[str, str] = Field(default_factory=dict)
    download_url: str | None = None


Pool.model_rebuild()

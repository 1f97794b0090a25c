"""Control-plane configuration: the environment the Lambda functions read, and the table's keys.

Both are defined once here and imported by the adapters, the moto test fixtures and the CDK
construct (`sluice_infra`). This module imports neither boto3 nor Powertools, so the CDK app can
read the constants without pulling in the Lambda runtime's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# ---- environment variables (names defined once; the CDK construct sets them on each function) --

ENV_TABLE_NAME = "SLUICE_TABLE_NAME"
#: Pool queues are named `<prefix>-<pool>` and `<prefix>-<pool>-dlq`.
ENV_QUEUE_PREFIX = "SLUICE_QUEUE_PREFIX"
#: The stack creates the default pool's queues itself; the functions use these URLs for it.
ENV_DEFAULT_POOL_QUEUE_URL = "SLUICE_DEFAULT_POOL_QUEUE_URL"
ENV_DEFAULT_POOL_DLQ_URL = "SLUICE_DEFAULT_POOL_DLQ_URL"
ENV_BUNDLE_BUCKET = "SLUICE_BUNDLE_BUCKET"
#: The log group that holds one log stream per flow run.
ENV_RUN_LOG_GROUP = "SLUICE_RUN_LOG_GROUP"
ENV_RETENTION_DAYS = "SLUICE_RETENTION_DAYS"
ENV_HEARTBEAT_TIMEOUT_SECONDS = "SLUICE_HEARTBEAT_TIMEOUT_SECONDS"
ENV_QUEUE_VISIBILITY_TIMEOUT_SECONDS = "SLUICE_QUEUE_VISIBILITY_TIMEOUT_SECONDS"
ENV_MAX_RECEIVE_COUNT = "SLUICE_MAX_RECEIVE_COUNT"
ENV_STACK_PREFIX = "SLUICE_STACK_PREFIX"
ENV_METRICS_NAMESPACE = "SLUICE_METRICS_NAMESPACE"
ENV_EVENT_BUS_NAME = "SLUICE_EVENT_BUS_NAME"
ENV_EVENT_RETENTION_DAYS = "SLUICE_EVENT_RETENTION_DAYS"
#: Days Sluice events are kept for `sluice events ls` (EventBridge consumers keep their own).
DEFAULT_EVENT_RETENTION_DAYS = 14

DEFAULT_STACK_PREFIX = "sluice"
DEFAULT_RETENTION_DAYS = 30
#: A Running run whose last heartbeat is older than this is Crashed by the monitor. Workers
#: heartbeat several times within it, so one lost request does not crash a healthy run.
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 90
#: Bounds of those settings (numbers are bounded where they enter, here the environment): a
#: lease longer than a day only delays crash detection, and a retention beyond ten years only
#: keeps records nobody reads (and `now - retention` must stay on the calendar).
MAX_HEARTBEAT_TIMEOUT_SECONDS = 24 * 60 * 60  # orchestration.leases.MAX_LEASE
MAX_RETENTION_DAYS = 3_650
#: How long a received run message stays invisible before the worker's first visibility extension.
DEFAULT_QUEUE_VISIBILITY_TIMEOUT_SECONDS = 60
#: Same value as `ports.DEFAULT_MAX_RECEIVE_COUNT` (not imported: `ports` pulls in `sluice.models`,
#: and this module must stay light for the CDK app). A test keeps the two equal.
DEFAULT_MAX_RECEIVE_COUNT = 5
#: Each stack's metrics live in their own CloudWatch namespace, `Sluice/<stack prefix>`, so that
#: two stacks in one account and region (`sluice`, `sluice-dev`) never sum into each other's
#: dashboards and alarms (which read a whole namespace: SEARCH and Metrics Insights).
METRICS_NAMESPACE_ROOT = "Sluice"


def metrics_namespace_for(stack_prefix: str) -> str:
    """The CloudWatch namespace of a stack's custom metrics."""
    return f"{METRICS_NAMESPACE_ROOT}/{stack_prefix}"


DEFAULT_METRICS_NAMESPACE = metrics_namespace_for(DEFAULT_STACK_PREFIX)


class ControlPlaneSettings(BaseSettings):
    """Everything the api, scheduler and monitor functions read from their environment.

    Construct with field names in code and tests (`ControlPlaneSettings(table_name="t")`); in
    Lambda every field comes from the `ENV_*` variable named above.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    table_name: str = Field(default="sluice", validation_alias=ENV_TABLE_NAME)
    stack_prefix: str = Field(
        default=DEFAULT_STACK_PREFIX, validation_alias=ENV_STACK_PREFIX
    )
    #: None means "the stack prefix".
    queue_prefix: str | None = Field(default=None, validation_alias=ENV_QUEUE_PREFIX)
    default_pool_queue_url: str | None = Field(
        default=None, validation_alias=ENV_DEFAULT_POOL_QUEUE_URL
    )
    default_pool_dlq_url: str | None = Field(
        default=None, validation_alias=ENV_DEFAULT_POOL_DLQ_URL
    )
    bundle_bucket: str | None = Field(default=None, validation_alias=ENV_BUNDLE_BUCKET)
    #: None means "/<stack prefix>/flow-runs".
    run_log_group: str | None = Field(default=None, validation_alias=ENV_RUN_LOG_GROUP)
    retention_days: int = Field(
        default=DEFAULT_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS,
        validation_alias=ENV_RETENTION_DAYS
    )
    heartbeat_timeout_seconds: int = Field(
        default=DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
        ge=1,
        le=MAX_HEARTBEAT_TIMEOUT_SECONDS,
        validation_alias=ENV_HEARTBEAT_TIMEOUT_SECONDS,
    )
    queue_visibility_timeout_seconds: int = Field(
        default=DEFAULT_QUEUE_VISIBILITY_TIMEOUT_SECONDS,
        ge=0,
        le=12 * 60 * 60,  # SQS's visibility timeout ceiling (ports.MAX_VISIBILITY_TIMEOUT_SECONDS)
        validation_alias=ENV_QUEUE_VISIBILITY_TIMEOUT_SECONDS,
    )
    max_receive_count: int = Field(
        default=DEFAULT_MAX_RECEIVE_COUNT,
        ge=1,
        le=1000,  # SQS redrive policy's maxReceiveCount range is 1..1000
        validation_alias=ENV_MAX_RECEIVE_COUNT,
    )
    #: None means "Sluice/<stack prefix>" (`metrics_namespace_for`).
    metrics_namespace: str | None = Field(default=None, validation_alias=ENV_METRICS_NAMESPACE)
    #: The EventBridge bus events are put on: "default" is the account's default bus.
    event_bus_name: str = Field(default="default", min_length=1, max_length=256,
                                validation_alias=ENV_EVENT_BUS_NAME)
    event_retention_days: int = Field(
        default=DEFAULT_EVENT_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS,
        validation_alias=ENV_EVENT_RETENTION_DAYS,
    )

    @property
    def effective_queue_prefix(self) -> str:
        return self.queue_prefix or self.stack_prefix

    @property
    def effective_metrics_namespace(self) -> str:
        return self.metrics_namespace or metrics_namespace_for(self.stack_prefix)

    @property
    def effective_run_log_group(self) -> str:
        return self.run_log_group or f"/{self.stack_prefix}/flow-runs"

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 24 * 60 * 60

    def to_environment(self) -> dict[str, str]:
        """The variables that reproduce these settings (what the CDK construct sets)."""
        env: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            env[str(field.validation_alias)] = str(value)
        return env


# ---- SQS: a queue and a dead-letter queue per work pool -----------------------------------------

#: SQS queue names are at most 80 characters:
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
MAX_QUEUE_NAME_CHARS = 80
DEAD_LETTER_SUFFIX = "-dlq"


#: The queue tag that declares a pool's kind when infrastructure made its queue (the
#: `LambdaPool`/`FargatePool` constructs): the control plane adopts the pool with that type.
POOL_TYPE_TAG = "sluice:pool-type"


def pool_queue_names(queue_prefix: str, pool: str) -> tuple[str, str]:
    """The (queue, dead-letter queue) names of a pool: `<prefix>-<pool>`, `<prefix>-<pool>-dlq`.

    The CDK construct names the default pool's queues with this too, so the functions find them.
    """
    queue = f"{queue_prefix}-{pool}"
    dead_letter = f"{queue}{DEAD_LETTER_SUFFIX}"
    if len(dead_letter) > MAX_QUEUE_NAME_CHARS:
        raise ValueError(f"queue name {dead_letter!r} is longer than SQS's "
                         f"{MAX_QUEUE_NAME_CHARS} characters; use a shorter prefix or pool name")
    return queue, dead_letter


# ---- DynamoDB single table -----------------------------------------------------------------------
# Attribute names are short on purpose: DynamoDB bills item size, and names count towards it.

TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
#: Epoch seconds after which DynamoDB deletes the item (TTL is enabled on this attribute).
TTL_ATTRIBUTE = "expires_at"

#: The item layout this code writes, and the newest it understands (docs/operations.md has the
#: table of versions). Version 1 is the layout before versions existed (items without `sv`);
#: `sluice_functions.migrations` moves stored data from one version to the next.
SCHEMA_VERSION = 5
#: From this schema on a flow run's state history lives in its own item (issue 20): code writes
#: it so only once the data is there, so the previous release can run until the migration.
HISTORY_INLINE_SCHEMA = 3
#: From this schema on a flow run's JSON and a sheet of finished task runs are stored
#: zlib-compressed (Binary): DynamoDB bills a write unit per started KB, and a 1.1 KB run
#: document or a 3.3 KB ten-task sheet compresses to about half a KB (issue 20). Code of schema 3
#: cannot read such items, so code writes them only once the data is at this schema
#: (`sluice admin migrate`), and the previous release keeps running until then.
COMPRESSED_ITEMS_SCHEMA = 4
#: From this schema on a flow run's compressed document leaves out what its item says already:
#: the id (the key), the version, flow name, deployment and pool (index attributes) and, after a
#: state change, the state (the newest inline history entry). That keeps a finished short run's
#: item within one write unit (issue 20). Code of schema 4 cannot read such a document.
LEAN_RUN_DOCUMENT_SCHEMA = 5
#: Number attribute on every item: the layout version it was written in (absent: version 1).
SCHEMA_VERSION_ATTRIBUTE = "sv"
#: The variable the stack sets on every function to the SCHEMA_VERSION of its code (read by
#: operators in the console; the code itself never trusts it over its own constant).
ENV_SCHEMA_VERSION = "SLUICE_SCHEMA_VERSION"
#: The table's one META item: which version the data is at, and a migration's progress.
META_PARTITION = "META"
META_SORT_KEY = "SCHEMA"

#: Attributes a flow-run item carries beside its JSON document, for the indexes below.
RUN_FLOW_NAME = "flow_name"
RUN_DEPLOYMENT_ID = "deployment_id"
RUN_POOL = "pool"
RUN_STATE_TYPE = "state_type"
#: "<scheduled_at as fixed-width UTC ISO>#<run id>": sorts by time, ties by id.
RUN_ORDER = "run_order"
#: Constant on flow-run items only: the partition of the "every run by time" index.
RUN_ENTITY = "entity"
RUN_ENTITY_FLOW_RUN = "flow_run"

#: Projected into every run index so list filters run on the index; the full run is then read
#: from the table. Heartbeats and other updates that change none of these (nor a key) write
#: the table only, not the four indexes. `state_type` is not among them: it is runs-by-state's
#: key and nowhere else, so a state change writes that one index (a delete and a put, 2 write
#: units) instead of also rewriting an entry in each of the other three (5 write units);
#: filters on state types read runs-by-state (`adapters.aws.dynamo_run_queries`).
RUN_FILTER_ATTRIBUTES = (RUN_FLOW_NAME, RUN_DEPLOYMENT_ID, RUN_POOL)


@dataclass(frozen=True)
class GlobalIndex:
    """One global secondary index: its keys (both strings) and the non-key attributes it holds."""

    name: str
    partition_key: str
    sort_key: str
    #: The non-key attributes it holds; None: the run filter attributes that are not its keys.
    projection: tuple[str, ...] | None = None

    @property
    def projected_attributes(self) -> tuple[str, ...]:
        if self.projection is not None:
            return self.projection
        keys = {self.partition_key, self.sort_key}
        return tuple(a for a in RUN_FILTER_ATTRIBUTES if a not in keys)


#: Runs of a deployment, by time (only runs with a deployment are in it).
RUNS_BY_DEPLOYMENT = GlobalIndex("runs-by-deployment", RUN_DEPLOYMENT_ID, RUN_ORDER)
#: Runs of a flow, by time.
RUNS_BY_FLOW = GlobalIndex("runs-by-flow", RUN_FLOW_NAME, RUN_ORDER)
#: Runs currently in a state type, by time: the scheduler's and monitor's work lists.
RUNS_BY_STATE = GlobalIndex("runs-by-state", RUN_STATE_TYPE, RUN_ORDER)
#: Every run, by time (one partition: fine for run creation rates far below 1,000 writes/s,
#: DynamoDB's per-partition ceiling).
RUNS_BY_TIME = GlobalIndex("runs-by-time", RUN_ENTITY, RUN_ORDER)

GLOBAL_INDEXES = (RUNS_BY_DEPLOYMENT, RUNS_BY_FLOW, RUNS_BY_STATE, RUNS_BY_TIME)
#: The index set of the previous release, exactly as it was deployed: the three indexes other
#: than runs-by-state also projected `state_type` then. CloudFormation changes one GSI per
#: stack update and cannot change a projection in place, so the stack gets from these to
#: GLOBAL_INDEXES in stages, one change each (`sluice_infra.storage.index_stages`: the three
#: deleted, then created again; context `sluice:indexStage`, docs/operations.md).
PREVIOUS_GLOBAL_INDEXES = (
    GlobalIndex(RUNS_BY_DEPLOYMENT.name, RUN_DEPLOYMENT_ID, RUN_ORDER,
                projection=(RUN_FLOW_NAME, RUN_POOL, RUN_STATE_TYPE)),
    GlobalIndex(RUNS_BY_FLOW.name, RUN_FLOW_NAME, RUN_ORDER,
                projection=(RUN_DEPLOYMENT_ID, RUN_POOL, RUN_STATE_TYPE)),
    RUNS_BY_STATE,
    GlobalIndex(RUNS_BY_TIME.name, RUN_ENTITY, RUN_ORDER,
                projection=(RUN_FLOW_NAME, RUN_DEPLOYMENT_ID, RUN_POOL, RUN_STATE_TYPE)),
)


def table_key_schema() -> dict[str, Any]:
    """`KeySchema`, `AttributeDefinitions`, `GlobalSecondaryIndexes` and `BillingMode` for boto3's
    `create_table` (the moto fixtures); the CDK construct reads the same constants."""
    key_attributes = {TABLE_PARTITION_KEY, TABLE_SORT_KEY}
    for index in GLOBAL_INDEXES:
        key_attributes |= {index.partition_key, index.sort_key}
    return {
        "KeySchema": [
            {"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(key_attributes)
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(index.projected_attributes),
                },
            }
            for index in GLOBAL_INDEXES
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


"""Where the control plane keeps things: the DynamoDB table, the pool queues, the bundle bucket.

Names, keys and queue settings come from `sluice_functions.config`, the definitions the
functions and the moto fixtures use, so the stack and the code cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sluice_functions.config import (
    GLOBAL_INDEXES,
    PREVIOUS_GLOBAL_INDEXES,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TTL_ATTRIBUTE,
    ControlPlaneSettings,
    GlobalIndex,
    pool_queue_names,
)

#: SQS's longest retention, so an operator has two weeks to inspect and redrive dead letters
#: (the value `sluice_functions.adapters.aws.sqs_queue` gives the DLQs it creates).
DEAD_LETTER_RETENTION = Duration.days(14)
#: Where bundles live in the bucket (`adapters.aws.s3_bundles.BUNDLE_PREFIX`).
BUNDLE_PREFIX = "bundles/"
#: Uploads are single presigned PUTs; a multipart upload left behind is garbage.
INCOMPLETE_UPLOAD_EXPIRY = Duration.days(1)
#: The bucket is versioned, so an overwritten or deleted bundle can be restored this long.
NONCURRENT_BUNDLE_RETENTION = Duration.days(30)

IndexSet = tuple[GlobalIndex, ...]


def index_stages(previous: Sequence[GlobalIndex] = PREVIOUS_GLOBAL_INDEXES,
                 target: Sequence[GlobalIndex] = GLOBAL_INDEXES) -> list[IndexSet]:
    """The index sets a stack goes through from `previous` to `target`, each one GSI change
    from the one before, because CloudFormation refuses an update that creates or deletes more
    than one GSI (and an index's keys or projection cannot change in place).

    Stage 0 is `previous`; the last stage is `target`. Indexes that go or change are deleted
    first (one stage each), then the new and changed ones created (one stage each), so the
    table never holds two indexes of one name. Equal sets: one stage, nothing to stage.
    """
    wanted = {index.name: index for index in target}
    current = list(previous)
    stages: list[IndexSet] = [tuple(current)]
    for index in previous:
        if wanted.get(index.name) != index:
            current = [kept for kept in current if kept.name != index.name]
            stages.append(tuple(current))
    for index in target:
        if index not in current:
            current.append(index)
            stages.append(tuple(current))
    return stages


def staged_indexes(stage: int | None, stages: Sequence[IndexSet] | None = None) -> IndexSet:
    """The index set of deployment `stage` (None: the last, this release's indexes)."""
    stages = list(stages if stages is not None else index_stages())
    if stage is None:
        return stages[-1]
    if not 0 <= stage < len(stages):
        raise ValueError(f"index stage {stage} does not exist: this release has stages 0 to "
                         f"{len(stages) - 1} (docs/operations.md, \"Staged index changes\")")
    return stages[stage]


def create_table(scope: Construct, *, removal_policy: RemovalPolicy,
                 indexes: Sequence[GlobalIndex] = GLOBAL_INDEXES) -> dynamodb.Table:
    """The single table: on-demand, point-in-time recovery, TTL, encrypted with the AWS-managed
    KMS key. A retained table is also protected from deletion (a stack delete cannot take it).
    `indexes`: its global secondary indexes (a stage of `index_stages` while they change)."""
    table = dynamodb.Table(
        scope, "Table",
        partition_key=dynamodb.Attribute(name=TABLE_PARTITION_KEY,
                                         type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=TABLE_SORT_KEY, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True),
        time_to_live_attribute=TTL_ATTRIBUTE,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        deletion_protection=removal_policy == RemovalPolicy.RETAIN,
        removal_policy=removal_policy,
    )
    for index in indexes:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=dynamodb.Attribute(name=index.partition_key,
                                             type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(index.projected_attributes),
        )
    return table


@dataclass(frozen=True)
class PoolQueues:
    """A work pool's queue and dead-letter queue."""

    pool: str
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue


def create_pool_queues(scope: Construct, pool: str, settings: ControlPlaneSettings
                       ) -> PoolQueues:
    """The pool's queues, configured exactly as `SqsRunQueue.create_pool_queue` would create
    them (names, visibility timeout, redrive, SQS-managed encryption), so the API's idempotent
    create of the same pool finds nothing to change. Both refuse requests without TLS."""
    queue_name, dead_letter_name = pool_queue_names(settings.effective_queue_prefix, pool)
    scope = Construct(scope, f"Pool-{pool}")
    dead_letters = sqs.Queue(
        scope, "DeadLetterQueue",
        queue_name=dead_letter_name,
        retention_period=DEAD_LETTER_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        # Queues hold run triggers only: the monitor re-enqueues what a lost queue held.
        removal_policy=RemovalPolicy.DESTROY,
    )
    queue = sqs.Queue(
        scope, "Queue",
        queue_name=queue_name,
        visibility_timeout=Duration.seconds(settings.queue_visibility_timeout_seconds),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters,
                                              max_receive_count=settings.max_receive_count),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.DESTROY,
    )
    return PoolQueues(pool, queue, dead_letters)


def create_bundle_bucket(scope: Construct, *, removal_policy: RemovalPolicy,
                         bundle_expiration: Duration | None) -> s3.Bucket:
    """Deployment code bundles: private (no ACLs, all public access blocked), encrypted, TLS
    only; bytes move through presigned URLs the API hands out. Bundles are content-addressed
    and deployments keep pointing at them, so they expire only when asked to. Versioned: a
    bundle deleted or overwritten by mistake stays restorable for NONCURRENT_BUNDLE_RETENTION."""
    rules = [s3.LifecycleRule(id="abort-incomplete-uploads",
                              abort_incomplete_multipart_upload_after=INCOMPLETE_UPLOAD_EXPIRY),
             s3.LifecycleRule(id="expire-old-versions",
                              noncurrent_version_expiration=NONCURRENT_BUNDLE_RETENTION)]
    if bundle_expiration is not None:
        rules.append(s3.LifecycleRule(id="expire-bundles", prefix=BUNDLE_PREFIX,
                                      expiration=bundle_expiration))
    return s3.Bucket(
        scope, "BundleBucket",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=True,
        lifecycle_rules=rules,
        removal_policy=removal_policy,
    )

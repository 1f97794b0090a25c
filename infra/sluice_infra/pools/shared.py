"""What `LambdaPool` and `FargatePool` share: a pool function (role, log group, environment) fed
by the pool's queue through an SQS event source mapping."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sluice_functions.config import POOL_TYPE_TAG

from ..acknowledgments import acknowledge, acknowledge_wildcard_resources
from ..asset import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from ..construct import SluiceControlPlane

#: Lambda's longest function timeout (15 minutes):
#: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
LAMBDA_MAX_TIMEOUT = Duration.minutes(15)
#: AWS's advice for SQS event sources: a queue visibility timeout of six times the function's
#: timeout, so a batch held while Lambda retries a throttled invocation does not come back:
#: https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
ESM_VISIBILITY_FACTOR = 6
#: SQS's longest visibility timeout (12 hours).
SQS_MAX_VISIBILITY_TIMEOUT = Duration.hours(12)
#: Lambda's memory range (MB).
LAMBDA_MIN_MEMORY_MB = 128
LAMBDA_MAX_MEMORY_MB = 10_240
#: The largest SQS batch an event source mapping hands over without a batching window.
SQS_MAX_BATCH_SIZE = 10
#: Where the functions may write: Lambda's only writable directory is /tmp.
LAMBDA_SLUICE_HOME = "/tmp/sluice"


def pool_environment(control_plane: SluiceControlPlane, pool: str) -> dict[str, str]:
    """What the worker client of a pool function or task reads: the API (signed with the role's
    credentials), the region and the pool."""
    return {
        "SLUICE_API_URL": control_plane.api_url,
        "SLUICE_KIND": "aws",
        "SLUICE_REGION": Stack.of(control_plane).region,
        "SLUICE_POOL": pool,
    }


def mapping_visibility_timeout(function_timeout: Duration) -> Duration:
    """The visibility timeout a queue consumed by a function of `function_timeout` gets."""
    seconds = min(function_timeout.to_seconds() * ESM_VISIBILITY_FACTOR,
                  SQS_MAX_VISIBILITY_TIMEOUT.to_seconds())
    return Duration.seconds(seconds)


def check_memory(memory_mb: int, what: str) -> None:
    """Refuse a memory size Lambda does not take."""
    if not LAMBDA_MIN_MEMORY_MB <= memory_mb <= LAMBDA_MAX_MEMORY_MB:
        raise ValueError(f"{what}: memory_mb must be between {LAMBDA_MIN_MEMORY_MB} and "
                         f"{LAMBDA_MAX_MEMORY_MB} (Lambda's range), not {memory_mb}")


class PoolFunction(Construct):
    """A function of a pool: its own role (the pool's worker policy and its log group, nothing
    else), its log group with the stack's retention, and an SQS event source mapping on the
    pool's queue that reports partial batch failures. Sets the queue's visibility timeout to
    `ESM_VISIBILITY_FACTOR` times the function's timeout."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 control_plane: SluiceControlPlane, pool: str, code: lambda_.Code,
                 handler: str, description: str, memory_mb: int, timeout: Duration,
                 batch_size: int, environment: Mapping[str, str] = {},
                 reserved_concurrency: int | None = None) -> None:
        super().__init__(scope, construct_id)
        check_memory(memory_mb, description)
        if not 1 <= batch_size <= SQS_MAX_BATCH_SIZE:
            raise ValueError(f"{description}: batch_size must be between 1 and "
                             f"{SQS_MAX_BATCH_SIZE}, not {batch_size}")
        if timeout.to_seconds() > LAMBDA_MAX_TIMEOUT.to_seconds():
            raise ValueError(f"{description}: timeout must be at most 15 minutes (Lambda's "
                             "limit)")
        self.queues = control_plane.pool_queues(pool)
        control_plane.set_pool_visibility_timeout(pool, mapping_visibility_timeout(timeout))
        acknowledge(self, "AwsSolutions-L1",
                    f"Pool functions run Python {LAMBDA_RUNTIME.name[6:]} like the control "
                    "plane's, for the same reason: the asset's bytecode must be compiled by a "
                    "Python of the runtime's version (README, 'Cold start').")
        self.log_group = logs.LogGroup(self, "Logs", retention=control_plane.log_retention,
                                       removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            managed_policies=[control_plane.worker_policies[pool]],
            description=f"Sluice {description} (pool {pool})")
        logs_statement = iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn])
        self.role.add_to_principal_policy(logs_statement)
        acknowledge_wildcard_resources(
            self.role, logs_statement,
            "Lambda creates one log stream per execution environment, named at run time; the "
            "grant is limited to this function's own log group.")
        self.function = lambda_.Function(
            self, "Function",
            runtime=LAMBDA_RUNTIME, architecture=LAMBDA_ARCHITECTURE,
            code=code, handler=handler, description=f"Sluice {description} (pool {pool})",
            memory_size=memory_mb, timeout=timeout, role=self.role,
            log_group=self.log_group, logging_format=lambda_.LoggingFormat.JSON,
            reserved_concurrent_executions=reserved_concurrency,
            environment={**pool_environment(control_plane, pool),
                         "SLUICE_HOME": LAMBDA_SLUICE_HOME,
                         "POWERTOOLS_SERVICE_NAME": f"sluice-pool-{pool}",
                         "POWERTOOLS_LOG_LEVEL": "INFO", **environment})
        self.event_source = event_sources.SqsEventSource(
            self.queues.queue, batch_size=batch_size, report_batch_item_failures=True)
        self.function.add_event_source(self.event_source)

    @property
    def queue(self) -> sqs.IQueue:
        """The pool's queue the function consumes."""
        return self.queues.queue


def declare_pool_type(control_plane: SluiceControlPlane, pool: str, pool_type: str) -> None:
    """Tag `pool`'s queue with its kind (`POOL_TYPE_TAG`): the control plane then records the
    pool with that type when it first meets it, so `sluice pool ls` shows it without a
    `sluice pool create --type` after the deploy."""
    Tags.of(control_plane.pool_queues(pool).queue).add(POOL_TYPE_TAG, pool_type)

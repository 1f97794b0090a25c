"""The api, scheduler and monitor Lambda functions: one code asset, three handlers, each with a
role that allows exactly the calls its code makes (see `sluice_functions.adapters.aws`)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

import sluice
from sluice_functions.config import ControlPlaneSettings

from .acknowledgments import acknowledge_wildcard_resources
from .asset import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from .capacity import Capacity
from .lambda_logging import DEFAULT_SYSTEM_LOGS, system_log_level
from .storage import BUNDLE_PREFIX

#: Every minute, as the design says: a run due within a minute is enqueued with DelaySeconds,
#: so runs still start on their second.
TICK_RATE = Duration.minutes(1)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    timeout: Duration
    description: str  # memory and reserved concurrency: `Capacity`


API = FunctionSpec("api", "sluice_functions.handlers.api.handler",
                   # API Gateway gives up on an integration after 30 s.
                   Duration.seconds(20), "the HTTP API (Powertools resolver)")
SCHEDULER = FunctionSpec("scheduler", "sluice_functions.handlers.scheduler.handler",
                         # Shorter than the tick rate, so ticks do not pile up.
                         Duration.seconds(55), "creates and releases scheduled runs")
MONITOR = FunctionSpec("monitor", "sluice_functions.handlers.monitor.handler",
                       Duration.seconds(55), "marks crashed and late runs")
SPECS = (API, SCHEDULER, MONITOR)

#: The table calls of `DynamoRunStore` (TransactWriteItems is authorized per Put/Delete in it).
TABLE_ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                      "dynamodb:DeleteItem", "dynamodb:BatchGetItem")
TABLE_QUERY_ACTIONS = ("dynamodb:Query",)
#: Every function sends run messages (enqueue, re-enqueue) to any pool's queue.
QUEUE_SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl")
QUEUE_ADMIN_ACTIONS = ("sqs:CreateQueue", "sqs:SetQueueAttributes", "sqs:GetQueueAttributes",
                       "sqs:ListQueueTags")
RUN_LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents", "logs:GetLogEvents",
                   "logs:DeleteLogStream")
#: Only the API deletes pools (`sluice pool delete`), with their queues.
QUEUE_DELETE_ACTIONS = ("sqs:DeleteQueue",)
#: Only the API scans: finding a run by its name (`sluice flow-run inspect brave-otter`), in
#: bounded pages (`adapters/aws/dynamo_run_maintenance.py`); the ticks never scan.
TABLE_SCAN_ACTIONS = ("dynamodb:Scan",)
#: Presigned URLs carry the signer's permissions; HeadObject needs ListBucket to tell a missing
#: bundle (404) from a forbidden one (403).
BUNDLE_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject")
BUNDLE_LIST_ACTIONS = ("s3:ListBucket",)
#: Every function records events (transitions, monitor findings) and puts them on the bus.
EVENT_PUT_ACTIONS = ("events:PutEvents",)
#: Only the API manages the rules of deployments that run on events (`adapters/aws/event_rules`).
EVENT_RULE_ACTIONS = ("events:PutRule", "events:PutTargets", "events:DeleteRule",
                      "events:RemoveTargets", "events:DescribeRule")


def event_bus_arn(scope: Construct, bus_name: str) -> str:
    """The ARN of the bus events go to ("default": the account's default bus)."""
    return Stack.of(scope).format_arn(service="events", resource="event-bus",
                                      resource_name=bus_name)


def on_event_rule_arn_pattern(scope: Construct, bus_name: str, queue_prefix: str) -> str:
    """The rules of deployments that run on events, `<queue prefix>-on-event-*` on the bus (a
    rule of the default bus has no bus in its ARN; one of another bus has)."""
    rules = f"{queue_prefix}-on-event-*"
    return Stack.of(scope).format_arn(
        service="events", resource="rule",
        resource_name=rules if bus_name == "default" else f"{bus_name}/{rules}")


def queue_arn_pattern(scope: Construct, queue_prefix: str) -> str:
    """Every queue under the stack's prefix: the pools the stack made and those the API makes."""
    return Stack.of(scope).format_arn(service="sqs", resource=f"{queue_prefix}-*")


class ControlPlaneFunctions(Construct):
    """The three functions, their log groups, roles, and the EventBridge rules of the ticks."""

    def __init__(self, scope: Construct, construct_id: str, *, code: lambda_.Code,
                 settings: ControlPlaneSettings, table: dynamodb.Table, bundle_bucket: s3.Bucket,
                 run_log_group: logs.LogGroup, log_retention: logs.RetentionDays,
                 capacity: Capacity = Capacity(),
                 system_logs: str = DEFAULT_SYSTEM_LOGS) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        #: Lambda's own lines (`lambda_logging`): "info" or "warn".
        self.system_log_level = system_log_level(system_logs)
        #: The one code asset, shared with the automations function (`automation_function`).
        self.code = code
        self.capacity = capacity
        environment = {
            **settings.to_environment(),
            # Powertools Logger writes JSON; Lambda's JSON log format makes the platform
            # lines structured too. Same level in both, so Powertools sees no conflict.
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": settings.effective_metrics_namespace,
        }
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        queues = queue_arn_pattern(self, settings.effective_queue_prefix)
        for spec in SPECS:
            role = iam.Role(self, f"{spec.name.capitalize()}Role",
                            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=f"Sluice {spec.name} function")
            log_group = logs.LogGroup(self, f"{spec.name.capitalize()}Logs",
                                      retention=log_retention,
                                      removal_policy=RemovalPolicy.DESTROY)
            self._allow(role, ("logs:CreateLogStream", "logs:PutLogEvents"),
                        [log_group.log_group_arn],
                        "Lambda creates one log stream per execution environment, named at run "
                        "time; the grant is limited to this function's own log group.")
            self._allow(role, TABLE_ITEM_ACTIONS, [table.table_arn])
            self._allow(role, TABLE_QUERY_ACTIONS, [table.table_arn, f"{table.table_arn}/index/*"],
                        "The run store queries all four of the table's global secondary "
                        "indexes; the wildcard covers those indexes of this table only.")
            # Only the API creates pools: their queues, and their depth for `pool inspect`.
            queue_actions = QUEUE_SEND_ACTIONS + (
                QUEUE_ADMIN_ACTIONS + QUEUE_DELETE_ACTIONS if spec is API else ())
            self._allow(role, queue_actions, [queues],
                        "Pools are created at run time (`sluice pool create`), each with its "
                        "own queue and dead-letter queue named <stack prefix>-<pool>[-dlq]; the "
                        "grant covers queues under this stack's prefix only.")
            self._allow(role, EVENT_PUT_ACTIONS, [event_bus_arn(self, settings.event_bus_name)])
            self.roles[spec.name] = role
            self.log_groups[spec.name] = log_group
            self.functions[spec.name] = self._function(spec, code, role, log_group, environment)
        api_role = self.roles[API.name]
        self._allow(api_role, TABLE_SCAN_ACTIONS, [table.table_arn])
        self._allow(api_role, RUN_LOG_ACTIONS, [run_log_group.log_group_arn],
                    "Run logs are one log stream per flow run, named after the run's id; the "
                    "grant is limited to the run log group.")
        self._allow(api_role, BUNDLE_OBJECT_ACTIONS,
                    [bundle_bucket.arn_for_objects(f"{BUNDLE_PREFIX}*")],
                    "Bundles are named by their SHA-256 under bundles/; the API presigns "
                    "uploads and downloads of those objects only.")
        list_bundles = iam.PolicyStatement(
            actions=list(BUNDLE_LIST_ACTIONS), resources=[bundle_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{BUNDLE_PREFIX}*"]}})
        api_role.add_to_policy(list_bundles)
        self._allow_on_event_rules(api_role)
        self._schedule_ticks()

    def _allow_on_event_rules(self, api_role: iam.Role) -> None:
        """The API makes one rule per deployment that runs on events, targeting itself: it may
        manage those rules only, and EventBridge may invoke it from those rules only."""
        rules = on_event_rule_arn_pattern(self, self.settings.event_bus_name,
                                          self.settings.effective_queue_prefix)
        self._allow(api_role, EVENT_RULE_ACTIONS, [rules],
                    "Deployments that run on events get a rule each at deploy time, named "
                    "<queue prefix>-on-event-<hash of the deployment id>; the grant covers "
                    "those rules of the configured bus only.")
        self.api.add_permission("OnEventRules",
                                principal=iam.ServicePrincipal("events.amazonaws.com"),
                                source_arn=rules)

    @property
    def api(self) -> lambda_.Function:
        return self.functions[API.name]

    def _allow(self, role: iam.Role, actions: tuple[str, ...], resources: list[str],
               wildcard_reason: str | None = None) -> None:
        statement = iam.PolicyStatement(actions=list(actions), resources=resources)
        role.add_to_policy(statement)
        if wildcard_reason:
            acknowledge_wildcard_resources(role, statement, wildcard_reason)

    def _function(self, spec: FunctionSpec, code: lambda_.Code, role: iam.Role,
                  log_group: logs.LogGroup, environment: dict[str, str]) -> lambda_.Function:
        is_tick = spec is not API
        return lambda_.Function(
            self, f"{spec.name.capitalize()}Function",
            description=f"Sluice {sluice.__version__}: {spec.description}",
            code=code,
            handler=spec.handler,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            memory_size=self.capacity.memory_mb(spec.name),
            reserved_concurrent_executions=self.capacity.reserved_concurrency(spec.name),
            timeout=spec.timeout,
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=self.system_log_level,
            environment=environment,
            # A failed tick is not retried: the next one, a minute later, does the same work
            # (ticks are idempotent), and a retry would only run beside it.
            retry_attempts=0 if is_tick else None,
            max_event_age=Duration.minutes(2) if is_tick else None,
        )

    def _schedule_ticks(self) -> None:
        for spec in (SCHEDULER, MONITOR):
            events.Rule(
                self, f"{spec.name.capitalize()}Tick",
                description=f"Sluice {spec.name} tick",
                schedule=events.Schedule.rate(TICK_RATE),
                targets=[targets.LambdaFunction(
                    self.functions[spec.name],
                    # A tick delivered late is worth nothing: the next one is on its way.
                    max_event_age=Duration.minutes(2), retry_attempts=2)],
            )

"""The automations function: reactive automations run here, off the API's requests and the ticks.

The api, scheduler and monitor functions put every Sluice event on the bus
(`sluice_functions.adapters.aws.event_bridge`, source `sluice.<stack prefix>`); one EventBridge
rule on that bus, matching the stack's source, invokes this function once per event, and it
runs the same engine the embedded server runs on a thread (`handlers/automations.py`).
Deliveries EventBridge cannot make, and invocations that fail after Lambda's retries, land in a
dead-letter queue. Proactive triggers stay on the monitor tick.

Cost: one invocation per Sluice event (about five per flow run), whether or not an automation
matches; see docs/automations.md "How automations run".
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import sluice
from sluice_functions.config import ControlPlaneSettings

from .acknowledgments import acknowledge, acknowledge_wildcard_resources
from .asset import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from .functions import (
    EVENT_PUT_ACTIONS,
    QUEUE_SEND_ACTIONS,
    TABLE_ITEM_ACTIONS,
    TABLE_QUERY_ACTIONS,
    event_bus_arn,
    queue_arn_pattern,
)
from .lambda_logging import DEFAULT_SYSTEM_LOGS, system_log_level

HANDLER = "sluice_functions.handlers.automations.handler"
#: Several automations may act on one event, each webhook waiting up to 5 s.
TIMEOUT = Duration.seconds(60)
MEMORY_MB = 512
#: An action hours late is still worth taking (a notification, a run): EventBridge retries a
#: delivery it could not make for this long, Lambda an invocation that failed for its maximum.
DELIVERY_MAX_AGE = Duration.hours(6)
DELIVERY_RETRIES = 8
#: SQS keeps a message at most 14 days:
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
DEAD_LETTER_RETENTION = Duration.days(14)


def event_source(settings: ControlPlaneSettings) -> str:
    """The `source` of the stack's events, as `EventBridgePublisher` puts them."""
    return f"sluice.{settings.stack_prefix}"


def dead_letter_queue_name(queue_prefix: str) -> str:
    """`<queue prefix>-automation_events-dlq`: under the stack's queue prefix, ending like
    every dead-letter queue, and never a pool's (pool names have no `_`)."""
    return f"{queue_prefix}-automation_events-dlq"


class AutomationFunction(Construct):
    """The function, its log group and role, the rule that feeds it and their dead-letter
    queue. Notify grants (SNS, secrets) come from `NotificationAccess` with the other roles."""

    def __init__(self, scope: Construct, construct_id: str, *, code: lambda_.Code,
                 settings: ControlPlaneSettings, table: dynamodb.Table,
                 log_retention: logs.RetentionDays,
                 system_logs: str = DEFAULT_SYSTEM_LOGS) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Sluice automations function")
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention,
                                       removal_policy=RemovalPolicy.DESTROY)
        self._grant_engine(settings, table)
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetters", queue_name=dead_letter_queue_name(settings.effective_queue_prefix),
            retention_period=DEAD_LETTER_RETENTION, enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED)
        acknowledge(self.dead_letter_queue, "AwsSolutions-SQS3",
                    "This queue is itself the dead-letter queue of the automations rule and "
                    "function: what lands here is read by an operator, not redriven.")
        self.function = lambda_.Function(
            self, "Function",
            description=f"Sluice {sluice.__version__}: runs reactive automations on events",
            code=code, handler=HANDLER, runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE, memory_size=MEMORY_MB, timeout=TIMEOUT,
            role=self.role, log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=system_log_level(system_logs),  # `lambda_logging`
            environment={**settings.to_environment(), "POWERTOOLS_LOG_LEVEL": "INFO",
                         "POWERTOOLS_METRICS_NAMESPACE": settings.effective_metrics_namespace},
            # Receipts make a retried invocation act once; what still fails is kept.
            retry_attempts=2, max_event_age=DELIVERY_MAX_AGE,
            dead_letter_queue=self.dead_letter_queue)
        bus = (None if settings.event_bus_name == "default" else
               events.EventBus.from_event_bus_name(self, "Bus", settings.event_bus_name))
        self.rule = events.Rule(
            self, "OnEvents", event_bus=bus,
            description="Sluice events -> the automations function",
            event_pattern=events.EventPattern(source=[event_source(settings)]),
            targets=[targets.LambdaFunction(
                self.function, dead_letter_queue=self.dead_letter_queue,
                retry_attempts=DELIVERY_RETRIES, max_event_age=DELIVERY_MAX_AGE)])

    def alarm_on_dead_letters(self, topic: sns.ITopic) -> cloudwatch.Alarm:
        """An alarm (to `topic`) when an event could not be delivered to, or handled by, the
        automations function: some automation may not have acted on it."""
        alarm = cloudwatch.Alarm(
            self, "DeadLettersAlarm",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"),
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Sluice events reached the automations' dead-letter queue: an "
                              "automation may not have acted on them (see the automations "
                              "function's log group; the messages hold the events).")
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return alarm

    def _grant_engine(self, settings: ControlPlaneSettings, table: dynamodb.Table) -> None:
        """What the engine and its actions call: the table (automations, receipts, events,
        runs), the pool queues (run-deployment enqueues), the bus (its result events)."""
        self._allow(("logs:CreateLogStream", "logs:PutLogEvents"), [self.log_group.log_group_arn],
                    "Lambda creates one log stream per execution environment, named at run "
                    "time; the grant is limited to this function's own log group.")
        self._allow(TABLE_ITEM_ACTIONS, [table.table_arn])
        self._allow(TABLE_QUERY_ACTIONS, [table.table_arn, f"{table.table_arn}/index/*"],
                    "The engine reads events and runs through the table's global secondary "
                    "indexes; the wildcard covers those indexes of this table only.")
        self._allow(QUEUE_SEND_ACTIONS,
                    [queue_arn_pattern(self, settings.effective_queue_prefix)],
                    "A run-deployment action enqueues the run in its pool's queue, named "
                    "<stack prefix>-<pool>; the grant covers queues under this stack's prefix.")
        self._allow(EVENT_PUT_ACTIONS, [event_bus_arn(self, settings.event_bus_name)])

    def _allow(self, actions: tuple[str, ...], resources: list[str],
               wildcard_reason: str | None = None) -> None:
        statement = iam.PolicyStatement(actions=list(actions), resources=resources)
        self.role.add_to_policy(statement)
        if wildcard_reason:
            acknowledge_wildcard_resources(self.role, statement, wildcard_reason)

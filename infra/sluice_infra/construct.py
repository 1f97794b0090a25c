"""`SluiceControlPlane`: the whole Sluice control plane as one CDK construct."""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from sluice import stack_outputs
from sluice.models import DEFAULT_POOL
from sluice.models.names import name_problem
from sluice_functions.config import (
    DEFAULT_RETENTION_DAYS,
    ControlPlaneSettings,
    metrics_namespace_for,
)

from .acknowledgments import acknowledge, acknowledge_wildcard_resources
from .asset import LAMBDA_RUNTIME, function_code
from .automation_function import AutomationFunction
from .capacity import Capacity
from .functions import ControlPlaneFunctions
from .http_api import ControlPlaneApi, Throttle
from .lambda_logging import DEFAULT_SYSTEM_LOGS, system_log_level
from .log_queries import SavedQueries
from .notifications import NotificationAccess
from .observability import ControlPlaneObservability
from .operations import ALARM_SETS, ESSENTIAL_ALARMS
from .storage import (PoolQueues, create_bundle_bucket, create_pool_queues, create_table,
                      staged_indexes)
from .upgrades import BackupPlanOptions, ControlPlaneUpgrades
from .worker_policy import create_worker_policy
from .workers import WorkerFleet, WorkerFleetGroup

#: Stack prefixes name queues (`<prefix>-<pool>-dlq`, at most 80 characters) and log groups.
PREFIX_PATTERN = r"^[a-z][a-z0-9-]{0,29}$"


class SluiceControlPlane(Construct):
    """The Sluice control plane: HTTP API, api/scheduler/monitor functions, DynamoDB table, pool
    queues, bundle bucket, log groups, alarms, optional dashboard, worker policy, optional
    worker fleet.

    Use it as its own stack (`sluice_infra.app`) or inside your CDK app; one per stack (its
    outputs have fixed logical ids that `sluice profile create` reads).

    :param prefix: names the pool queues (`<prefix>-<pool>`), the dashboard and alarms; must
        be unique per account and region. Lowercase letters, digits, '-'.
    :param retention_days: days flow runs and their task runs are kept in the table (TTL).
    :param extra_pools: pools besides "default" whose queues the stack creates (alarms and a
        fleet need them at deploy time); others can be created later with `sluice pool create`.
    :param log_retention: retention of every log group (run logs, functions, API access logs).
    :param alarm_email: an address subscribed to the alarm topic (it must confirm by email).
    :param alarms: "essential" (default: 6 alarms, ticks not invoked, API 5xx, crashed runs,
        dead letters of every pool and of automations; keeps an idle stack under $1 a month) or
        "full" (adds throttles, API 429s, each function's errors, skipped records and the age
        of each pool queue's oldest message: 18 with one pool; README "Alarms").
    :param dashboard: also create the CloudWatch dashboard (default False: $3 a month beyond
        an account's first three dashboards; the alarms and saved queries cover operations).
    :param lambda_system_logs: Lambda's own log lines of the functions: "warn" (default: no
        start/report line per invocation, CloudWatch Logs bytes saved) or "info" (each
        invocation's duration, memory used and cold start in the logs; `lambda_logging`).
    :param worker_fleet: an EC2 Auto Scaling group of workers (`WorkerFleet`), or None.
    :param removal_policy: what a stack delete does to the data (table, bucket, run logs);
        RETAIN also turns on the table's deletion protection.
    :param capacity: the API's throttle, each function's memory and reserved concurrency
        (`Capacity`; defaults sized for 1,000 concurrent runs, README "Capacity").
    :param throttle: the API's stage-wide rate and burst limits; overrides those of `capacity`
        (kept for apps written before `capacity`).
    :param bundle_expiration: delete uploaded bundles this long after upload (None: never).
    :param index_stage: while a release changes the table's indexes, the stage to deploy (one
        GSI change per deployment; None: the release's indexes; docs/operations.md).
    :param backup_plan: a daily AWS Backup plan for the table (`BackupPlanOptions`), or None
        (point-in-time recovery is on either way).
    :param event_bus_name: the EventBridge bus Sluice events are put on ("default": the
        account's default bus); route them with rules on that bus (docs/events.md).
    :param notification_topic_arns: SNS topics automations may notify besides the stack's own
        notification topic (output `SluiceNotificationTopicArn`).
    :param notification_secrets: names of the secrets (SSM parameters or Secrets Manager
        secrets) that hold automations' webhook URLs and signing keys: the functions may read
        those, and no others.
    """

    def __init__(self, scope: Construct, construct_id: str, *,
                 prefix: str = "sluice",
                 retention_days: int = DEFAULT_RETENTION_DAYS,
                 extra_pools: Sequence[str] = (),
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
                 alarm_email: str | None = None,
                 alarms: str = ESSENTIAL_ALARMS,
                 dashboard: bool = False,
                 worker_fleet: WorkerFleet | None = None,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
                 capacity: Capacity = Capacity(),
                 throttle: Throttle | None = None,
                 bundle_expiration: Duration | None = None,
                 event_bus_name: str = "default",
                 notification_topic_arns: Sequence[str] = (),
                 notification_secrets: Sequence[str] = (),
                 index_stage: int | None = None,
                 backup_plan: BackupPlanOptions | None = None,
                 lambda_system_logs: str = DEFAULT_SYSTEM_LOGS) -> None:
        super().__init__(scope, construct_id)
        system_log_level(lambda_system_logs)  # refuses a bad choice before any resource
        pools = _pool_names(extra_pools)
        if not re.match(PREFIX_PATTERN, prefix):
            raise ValueError(f"prefix {prefix!r} must match {PREFIX_PATTERN} (lowercase "
                             "letters, digits and '-', at most 30 characters)")
        if alarms not in ALARM_SETS:
            raise ValueError(f"alarms {alarms!r} must be one of {', '.join(ALARM_SETS)}")
        if worker_fleet is not None and worker_fleet.pool not in pools:
            raise ValueError(f"worker fleet pool {worker_fleet.pool!r} has no queue in this "
                             f"stack; add it to extra_pools (pools: {', '.join(pools)})")
        stack = Stack.of(self)
        acknowledge(self, "AwsSolutions-L1",
                    f"The functions run Python {LAMBDA_RUNTIME.name[6:]}, one release behind the "
                    "newest, on purpose: the asset's bytecode (about 1.6 s off every cold start) "
                    "must be compiled by a Python of the runtime's version, and this is the "
                    "newest one build machines commonly have (README, 'Cold start').")

        self.table = create_table(self, removal_policy=removal_policy,
                                  indexes=staged_indexes(index_stage))
        self.bundle_bucket = create_bundle_bucket(self, removal_policy=removal_policy,
                                                  bundle_expiration=bundle_expiration)
        acknowledge(self.bundle_bucket, "AwsSolutions-S1",
                    "Bundles are only reached through presigned URLs the API issues to "
                    "IAM-authorized callers, and every API call is in the API's access log; "
                    "server access logs would need a second bucket and add nothing.")
        #: Every log group's retention; pool constructs (`sluice_infra.pools`) use it too.
        self.log_retention = log_retention
        self.run_log_group = logs.LogGroup(self, "RunLogs", retention=log_retention,
                                           removal_policy=removal_policy)
        settings = ControlPlaneSettings(
            table_name=self.table.table_name, stack_prefix=prefix, queue_prefix=prefix,
            bundle_bucket=self.bundle_bucket.bucket_name,
            run_log_group=self.run_log_group.log_group_name, retention_days=retention_days,
            metrics_namespace=metrics_namespace_for(prefix), event_bus_name=event_bus_name)
        self.pools: list[PoolQueues] = [create_pool_queues(self, pool, settings)
                                        for pool in pools]
        default_pool = self.pools[0]
        self.settings = settings.model_copy(update={
            "default_pool_queue_url": default_pool.queue.queue_url,
            "default_pool_dlq_url": default_pool.dead_letter_queue.queue_url})

        self.functions = ControlPlaneFunctions(
            self, "Functions", code=function_code(), settings=self.settings, table=self.table,
            bundle_bucket=self.bundle_bucket, run_log_group=self.run_log_group,
            log_retention=log_retention, capacity=capacity, system_logs=lambda_system_logs)
        #: Reactive automations: their own function, fed by an EventBridge rule on the bus.
        self.automation_function = AutomationFunction(
            self, "Automations", code=self.functions.code, settings=self.settings,
            table=self.table, log_retention=log_retention, system_logs=lambda_system_logs)
        self.notifications = NotificationAccess(
            self, "Notifications", prefix=prefix,
            roles=[*self.functions.roles.values(), self.automation_function.role],
            topic_arns=notification_topic_arns, secret_names=notification_secrets)
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=log_retention,
                                    removal_policy=RemovalPolicy.DESTROY)
        self.api = ControlPlaneApi(self, "Api", function=self.functions.api,
                                   access_log_group=access_logs,
                                   throttle=throttle or capacity.throttle)
        self.access_log_group = access_logs

        self.alarm_topic = sns.Topic(self, "AlarmTopic", display_name=f"Sluice alarms ({prefix})",
                                     enforce_ssl=True)
        acknowledge(self.alarm_topic, "AwsSolutions-SNS2",
                    "Alarm notifications carry alarm names and states, no run data or secrets. "
                    "CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS "
                    "key, and a customer-managed key would cost $1 a month at idle.")
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.observability = ControlPlaneObservability(
            self, "Observability", namespace=self.settings.effective_metrics_namespace,
            dashboard_name=f"{prefix}-control-plane", topic=self.alarm_topic,
            http_api=self.api.http_api, pools=self.pools,
            functions={**self.functions.functions,
                       "automations": self.automation_function.function},
            table=self.table, access_log_group=access_logs, alarm_set=alarms,
            dashboard=dashboard)
        self.automation_function.alarm_on_dead_letters(self.alarm_topic)
        self.upgrades = ControlPlaneUpgrades(
            self, "Upgrades", table=self.table,
            functions=[*self.functions.functions.values(), self.automation_function.function],
            backup_plan=backup_plan, removal_policy=removal_policy)
        self.saved_queries = SavedQueries(
            self, "SavedQueries", prefix=prefix,
            function_log_groups=list(self.functions.log_groups.values()),
            run_log_group=self.run_log_group, access_log_group=access_logs)

        #: One managed policy per pool: its workers reach that pool's queue and routes only.
        self.worker_policies: dict[str, iam.ManagedPolicy] = {
            pool.pool: create_worker_policy(self, pool=pool, api=self.api)
            for pool in self.pools}
        self.worker_policy = self.worker_policies[DEFAULT_POOL]
        self.worker_fleet: WorkerFleetGroup | None = None
        if worker_fleet is not None:
            fleet_pool = next(p for p in self.pools if p.pool == worker_fleet.pool)
            self.worker_fleet = WorkerFleetGroup(
                self, "WorkerFleet", fleet=worker_fleet, pool=fleet_pool,
                policy=self.worker_policies[worker_fleet.pool], topic=self.alarm_topic,
                log_retention=log_retention)
            if worker_fleet.may_trigger:
                self.grant_trigger(self.worker_fleet.role, *worker_fleet.may_trigger)

        self._output(stack_outputs.API_URL, self.api.url, "Base URL of the Sluice API")
        self._output(stack_outputs.REGION, stack.region, "Region of the control plane")
        self._output(stack_outputs.NOTIFICATION_TOPIC_ARN, self.notifications.topic.topic_arn,
                     "SNS topic automations' notify actions publish to (subscribe email, "
                     "SMS or chat to it)")
        self._output(stack_outputs.BUNDLE_BUCKET, self.bundle_bucket.bucket_name,
                     "Bucket of deployment code bundles")
        self._output(stack_outputs.WORKER_POLICY_ARN, self.worker_policy.managed_policy_arn,
                     "Attach to the roles of the default pool's worker hosts (EC2 or on-prem)")
        self._output(stack_outputs.WORKER_POLICY_ARNS, stack.to_json_string(
            {pool: policy.managed_policy_arn for pool, policy in self.worker_policies.items()}),
            "The worker policy of each pool (JSON): attach a pool's to its worker hosts' roles")
        self._output(stack_outputs.QUEUE_URLS,
                     stack.to_json_string({p.pool: p.queue.queue_url for p in self.pools}),
                     "Queue URL of each pool the stack created (JSON)")

    @property
    def api_url(self) -> str:
        """The API's base URL."""
        return self.api.url

    def grant_trigger(self, grantee: iam.IGrantable, *deployments: str) -> iam.Grant:
        """Let `grantee` (a pool's worker role: its flows call `run_deployment`) start runs of
        the named deployments ("flow/name") and watch them; nothing else an operator does."""
        from sluice.tokens import trigger_grant
        from sluice_functions import access

        if not deployments:
            raise ValueError("grant_trigger: name at least one deployment as 'flow/name'")
        resources = [self.api.invoke_arn(method, path) for ref in deployments
                     for method, path in access.trigger_requests(trigger_grant(ref))]
        grant = iam.Grant.add_to_principal(grantee=grantee, actions=["execute-api:Invoke"],
                                           resource_arns=resources)
        if isinstance(grantee, iam.Role) and grant.principal_statement is not None:
            acknowledge_wildcard_resources(
                grantee, grant.principal_statement,
                "Each resource is one deployment's trigger route or the runs of that "
                "deployment (the wildcard is a run id): what `run_deployment` calls.")
        return grant

    def pool_queues(self, pool: str) -> PoolQueues:
        """The queues of `pool`, which the stack must create (`extra_pools`)."""
        for queues in self.pools:
            if queues.pool == pool:
                return queues
        raise ValueError(f"pool {pool!r} has no queue in this stack; add it to the control "
                         f"plane's extra_pools (pools: {', '.join(p.pool for p in self.pools)})")

    def set_pool_visibility_timeout(self, pool: str, timeout: Duration) -> None:
        """Give `pool`'s queue this visibility timeout instead of the default (60 s, which a
        worker extends while it runs a run). For pools consumed by a Lambda event source
        mapping (`LambdaPool`, `FargatePool`), which never extends it: AWS refuses a mapping
        whose queue's visibility timeout is shorter than the function's timeout. Stack pools
        are never reconfigured by the API (`sluice pool create` finds them as they are)."""
        queue = self.pool_queues(pool).queue.node.default_child
        assert isinstance(queue, sqs.CfnQueue)
        queue.visibility_timeout = int(timeout.to_seconds())

    def grant_invoke_api(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let `grantee` (an operator's role, CI) call every API route."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["execute-api:Invoke"],
            resource_arns=[self.api.http_api.arn_for_execute_api()])

    def _output(self, logical_id: str, value: str, description: str) -> None:
        output = CfnOutput(self, logical_id, value=value, description=description)
        # Fixed logical ids: `sluice profile create` finds them wherever the construct sits.
        output.override_logical_id(logical_id)


def _pool_names(extra_pools: Sequence[str]) -> list[str]:
    """"default" first, then the extra pools: valid names, no repeats."""
    pools = [DEFAULT_POOL]
    for pool in extra_pools:
        # The one rule for pool names (`sluice.models.names`): the message names the bad
        # character, or the dead-letter queue a `-dlq` name would collide with.
        problem = (name_problem(pool, "pool") if isinstance(pool, str)
                   else f"pool name {pool!r} must be a string")
        if problem is not None:
            raise ValueError(problem)
        if pool in pools:
            raise ValueError(f"pool {pool!r} is listed twice (\"default\" is always created)")
        pools.append(pool)
    return pools

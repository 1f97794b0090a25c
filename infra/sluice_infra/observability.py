"""The CloudWatch dashboard (optional) and alarms of the control plane.

Which alarms: `alarm_set` (`operations.ALARM_SETS`). Every set has crashed runs and API 5xx
(besides the operations module's dead-man and dead-letter alarms); the full set adds errors of
each function and records a tick skipped. The dashboard is built only when asked for
(`dashboard=True`): $3 a month beyond an account's first three, and the alarms, saved queries
and `sluice pool ls` cover day-to-day operations.

Custom metrics are the EMF metrics `sluice_functions` emits (names below; tests/infra checks each
still appears in the functions' code). They carry a `pool` or `state` dimension, or none, so the
dashboard sums over dimensions with SEARCH and the crashed-runs alarm uses a Metrics Insights
query (alarms cannot SEARCH): a pool created at run time is covered without a stack update.
Each stack has its own namespace (`sluice_functions.config.metrics_namespace_for`), so these
totals never include another stack's runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from .operations import DEAD_LETTER_MESSAGES, ESSENTIAL_ALARMS, FULL_ALARMS, OperationsAlarms
from .storage import PoolQueues

# ---- metric names emitted by sluice_functions (and where) ---------------------------------------
FLOW_RUN_TRANSITIONS = "FlowRunTransitions"  # service/lifecycle.py, dimension `state`
FLOW_RUNS_CREATED = "FlowRunsCreated"        # service/flow_runs.py, dimension `pool`
FLOW_RUNS_ENQUEUED = "FlowRunsEnqueued"      # service/queueing.py, dimension `pool`
FLOW_RUNS_CLAIMED = "FlowRunsClaimed"        # service/claims.py, dimension `pool`
ENQUEUE_FAILED = "EnqueueFailed"             # service/queueing.py, dimension `pool`
LATE_RUNS = "LateRuns"                       # monitoring/monitor.py, dimension `pool`
CRASHED_RUNS = "CrashedRuns"                 # monitoring/monitor.py, dimension `pool`
CRASHED_RUNS_RETRIED = "CrashedRunsRetried"  # monitoring/monitor.py, dimension `pool`
SCHEDULED_RUNS_CREATED = "ScheduledRunsCreated"  # scheduling/tick.py, no dimension
SCHEDULER_ERRORS = "SchedulerErrors"         # scheduling/tick.py, no dimension
TICK_RECORD_ERRORS = "TickRecordErrors"      # isolation.py, dimension `tick`
CUSTOM_METRICS = (FLOW_RUN_TRANSITIONS, FLOW_RUNS_CREATED, FLOW_RUNS_ENQUEUED, FLOW_RUNS_CLAIMED,
                  ENQUEUE_FAILED, LATE_RUNS, CRASHED_RUNS, CRASHED_RUNS_RETRIED,
                  SCHEDULED_RUNS_CREATED, SCHEDULER_ERRORS, TICK_RECORD_ERRORS,
                  DEAD_LETTER_MESSAGES)

PERIOD = Duration.minutes(5)
#: A single 5xx can be deliberate (503 with Retry-After when DynamoDB throttles; clients
#: retry); five within five minutes is a problem worth a page.
API_SERVER_ERRORS_THRESHOLD = 5


def metrics_insights_total(namespace: str, metric: str) -> str:
    """A Metrics Insights query summing `metric` over every dimension it is emitted with."""
    return f'SELECT SUM("{metric}") FROM "{namespace}"'


class ControlPlaneObservability(Construct):
    """Alarms (each notifying `topic`) and, when `dashboard`, the dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, namespace: str,
                 dashboard_name: str, topic: sns.ITopic, http_api: apigateway.HttpApi,
                 functions: Mapping[str, lambda_.Function], pools: Sequence[PoolQueues],
                 table: dynamodb.ITable, access_log_group: logs.ILogGroup,
                 ticks: Sequence[str] = ("scheduler", "monitor"),
                 alarm_set: str = ESSENTIAL_ALARMS, dashboard: bool = False) -> None:
        super().__init__(scope, construct_id)
        self.namespace = namespace
        notify = actions.SnsAction(topic)
        # Dead-man, throttles, oldest message, and the one dead-letter alarm over every pool.
        self.operations = OperationsAlarms(
            self, "Operations", namespace=namespace, functions=functions, ticks=ticks,
            table=table, access_log_group=access_log_group, pools=pools, alarm_set=alarm_set)
        self.alarms: list[cloudwatch.Alarm] = list(self.operations.alarms)
        self._any_alarm(CRASHED_RUNS, "crashed runs",
                        "The monitor marked runs Crashed: their worker stopped heartbeating "
                        "(killed, lost network, instance gone).")
        self._alarm("ApiServerErrors",
                    http_api.metric_server_error(period=PERIOD, statistic="Sum"),
                    threshold=API_SERVER_ERRORS_THRESHOLD,
                    description="The Sluice API answered 5xx repeatedly.")
        if alarm_set == FULL_ALARMS:
            self._any_alarm(TICK_RECORD_ERRORS, "records a tick skipped",
                            "The scheduler or monitor skipped a run or deployment it could not "
                            "handle (bad stored data or a bug); its id is in the function's "
                            "log. The other records were handled.")
            for name, function in functions.items():
                self._alarm(f"{name.capitalize()}FunctionErrors",
                            function.metric_errors(period=PERIOD, statistic="Sum"), threshold=1,
                            description=f"The {name} function failed (see its log group).")
        for alarm in self.alarms:
            alarm.add_alarm_action(notify)
        self.dashboard: cloudwatch.Dashboard | None = (
            self._dashboard(dashboard_name, http_api, functions, pools) if dashboard else None)

    def _any_alarm(self, metric: str, label: str, description: str) -> None:
        """An alarm (named after `metric`) on any occurrence of `metric`, over all dimensions."""
        self._alarm(metric,
                    cloudwatch.MathExpression(
                        expression=metrics_insights_total(self.namespace, metric),
                        label=label, period=PERIOD),
                    threshold=1, description=description)

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, *, threshold: float,
               description: str) -> None:
        self.alarms.append(cloudwatch.Alarm(
            self, construct_id, metric=metric, threshold=threshold, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # No data means nothing happened: no errors, no crashes, an idle queue.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        ))

    # ---- dashboard ---------------------------------------------------------------------------

    def _total(self, metric: str, label: str) -> cloudwatch.MathExpression:
        """`metric` summed over all its dimensions (one line)."""
        search = f"SEARCH('Namespace=\"{self.namespace}\" MetricName=\"{metric}\"', 'Sum', 300)"
        return cloudwatch.MathExpression(expression=f"SUM({search})", label=label,
                                         period=PERIOD)

    def _by(self, metric: str, dimension: str) -> cloudwatch.MathExpression:
        """One line per value of `dimension`."""
        # A namespace with non-alphanumeric characters ("Sluice/sluice-dev") must be quoted
        # inside a metric schema.
        search = (f"SEARCH('{{\"{self.namespace}\",{dimension}}} MetricName=\"{metric}\"', "
                  "'Sum', 300)")
        return cloudwatch.MathExpression(expression=search, label="", period=PERIOD)

    def _dashboard(self, name: str, http_api: apigateway.HttpApi,
                   functions: Mapping[str, lambda_.Function],
                   pools: Sequence[PoolQueues]) -> cloudwatch.Dashboard:
        def graph(title: str, metrics: Sequence[cloudwatch.IMetric], width: int = 8
                  ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=width, height=6)

        def per_function(metric: str, statistic: str) -> list[cloudwatch.IMetric]:
            return [function.metric(metric, statistic=statistic, period=PERIOD, label=name)
                    for name, function in functions.items()]

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=name)
        dashboard.add_widgets(
            graph("Flow runs: transitions into each state", [
                self._by(FLOW_RUN_TRANSITIONS, "state")]),
            graph("Flow runs: created, enqueued, claimed", [
                self._total(FLOW_RUNS_CREATED, "created"),
                self._total(SCHEDULED_RUNS_CREATED, "created by schedules"),
                self._total(FLOW_RUNS_ENQUEUED, "enqueued"),
                self._total(FLOW_RUNS_CLAIMED, "claimed by workers")]),
            graph("Late and crashed runs", [
                self._total(LATE_RUNS, "late"), self._total(CRASHED_RUNS, "crashed"),
                self._total(CRASHED_RUNS_RETRIED, "crashed, retried"),
                self._total(ENQUEUE_FAILED, "enqueue failed"),
                self._total(SCHEDULER_ERRORS, "scheduler errors"),
                self._total(TICK_RECORD_ERRORS, "records a tick skipped")]),
        )
        dashboard.add_widgets(
            # The age of the oldest waiting message is how long the next run has been waiting
            # for a worker: the pickup latency a user feels.
            graph("Pickup latency: oldest waiting run (s)", [
                pool.queue.metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(1), statistic="Maximum", label=pool.pool)
                for pool in pools]),
            graph("Queue depth (waiting, running, delayed) and dead letters", [
                metric for pool in pools for metric in (
                    pool.queue.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(1), statistic="Maximum",
                        label=f"{pool.pool} waiting"),
                    pool.queue.metric_approximate_number_of_messages_not_visible(
                        period=Duration.minutes(1), statistic="Maximum",
                        label=f"{pool.pool} running"),
                    pool.queue.metric_approximate_number_of_messages_delayed(
                        period=Duration.minutes(1), statistic="Maximum",
                        label=f"{pool.pool} delayed"),
                    pool.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(1), statistic="Maximum",
                        label=f"{pool.pool} dead letters"))]),
            graph("Dead letters of every pool (reported by the monitor)", [
                self.operations.dead_letters_by_pool()]),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=8, height=6),
        )
        dashboard.add_widgets(
            graph("API requests and errors", [
                http_api.metric_count(period=PERIOD, statistic="Sum", label="requests"),
                http_api.metric_client_error(period=PERIOD, statistic="Sum", label="4xx"),
                http_api.metric_server_error(period=PERIOD, statistic="Sum", label="5xx")]),
            graph("API latency (ms)", [
                http_api.metric_latency(period=PERIOD, statistic=statistic, label=statistic)
                for statistic in ("p50", "p90", "p99")]),
            graph("Lambda errors and throttles", [
                *per_function("Errors", "Sum"),
                *(function.metric_throttles(period=PERIOD, statistic="Sum",
                                            label=f"{name} throttles")
                  for name, function in functions.items())]),
        )
        dashboard.add_widgets(
            graph("Lambda duration p90 (ms)", per_function("Duration", "p90"), width=12),
            graph("Lambda invocations", per_function("Invocations", "Sum"), width=12),
        )
        return dashboard

"""The operator's alarms beyond errors and crashes, and the saved Logs Insights queries.

Alarms (each notifies the alarm topic, through `ControlPlaneObservability`). In every alarm set
(`ESSENTIAL_ALARMS`, the default):
* dead-man: the scheduler or the monitor was not invoked for `DEAD_MAN_MINUTES` (missing data
  is breaching: a function that is never invoked reports nothing at all);
* one dead-letter alarm over every pool, those created later included: the monitor reports
  the total (`sluice_functions.monitoring.dead_letters`);
* API 429s, the first sign that the capacity is too low for the load (README "Capacity"): an
  HTTP API has no throttle metric, so a metric filter counts status 429 in its access log.
In the full set only (`FULL_ALARMS`):
* Lambda throttles of each function; DynamoDB read/write throttle events of the table;
* the age of the oldest message of each pool queue the stack created (runs waiting for a
  worker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .storage import PoolQueues

#: The monitor's dead-letter gauge (`monitoring/dead_letters.py`): no dimension = all pools.
DEAD_LETTER_MESSAGES = "DeadLetterMessages"  # monitoring/dead_letters.py, dimension `pool`
#: Counted from the API access log by a metric filter (no dimension).
API_THROTTLED = "ApiThrottledRequests"
#: The ticks run every minute: five minutes without one is not a hiccup.
DEAD_MAN_MINUTES = 5
PERIOD = Duration.minutes(5)
#: A few 429s are a burst the clients retry (lease renewals first); this many in five minutes
#: means the throttle is too low for the load (README, "Capacity").
API_THROTTLED_THRESHOLD = 10
#: A run waiting this long for a worker: the pool has too few workers, or none.
OLDEST_MESSAGE_SECONDS = 15 * 60
#: Any throttle of a function or the table is worth a look (a tick throttled did not run).
THROTTLES_THRESHOLD = 1
#: The alarm sets (`sluice:alarms`). CloudWatch bills $0.10 a month per metric an alarm reads
#: (each metric of a metric-math expression counts), so the set is what sets the idle bill:
#: essential (7 alarms, $0.70) keeps an idle stack under $1 a month; full (17 + one per pool the
#: stack creates) adds Lambda and DynamoDB throttles, queue age, per-function errors and skipped
#: records.
ESSENTIAL_ALARMS = "essential"
FULL_ALARMS = "full"
ALARM_SETS = (ESSENTIAL_ALARMS, FULL_ALARMS)


def metric_filter_pattern_429() -> logs.IFilterPattern:
    """Access log lines (`http_api.ACCESS_LOG_FIELDS`: `s`, the status, is a JSON string) of
    429s."""
    return logs.FilterPattern.string_value("$.s", "=", "429")


class OperationsAlarms(Construct):
    """The alarms of the module docstring, as `self.alarms` (the caller wires the topic)."""

    def __init__(self, scope: Construct, construct_id: str, *, namespace: str,
                 functions: Mapping[str, lambda_.Function], ticks: Sequence[str],
                 table: dynamodb.ITable, access_log_group: logs.ILogGroup,
                 pools: Sequence[PoolQueues], alarm_set: str = ESSENTIAL_ALARMS) -> None:
        super().__init__(scope, construct_id)
        self.namespace = namespace
        self.alarms: list[cloudwatch.Alarm] = []
        for name in ticks:
            self.alarms.append(cloudwatch.Alarm(
                self, f"{name.capitalize()}NotInvoked",
                metric=functions[name].metric_invocations(period=Duration.minutes(1),
                                                          statistic="Sum"),
                threshold=1, evaluation_periods=DEAD_MAN_MINUTES,
                datapoints_to_alarm=DEAD_MAN_MINUTES,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                alarm_description=f"The {name} was not invoked for {DEAD_MAN_MINUTES} minutes: "
                                  "its EventBridge rule is disabled or deleted, or the function "
                                  "cannot start. Nothing is scheduled or monitored meanwhile."))
        self._at_least("DeadLetters",
                       cloudwatch.Metric(namespace=namespace, metric_name=DEAD_LETTER_MESSAGES,
                                         statistic="Maximum", period=PERIOD),
                       1,
                       "Runs were delivered maxReceiveCount times without finishing and are in "
                       "a pool's dead-letter queue (any pool, those created later too; "
                       "`sluice pool ls` shows which).")
        logs.MetricFilter(self, "ApiThrottledFilter", log_group=access_log_group,
                          filter_pattern=metric_filter_pattern_429(),
                          metric_namespace=namespace, metric_name=API_THROTTLED,
                          metric_value="1")
        self._at_least("ApiThrottled",
                       cloudwatch.Metric(namespace=namespace, metric_name=API_THROTTLED,
                                         statistic="Sum", period=PERIOD),
                       API_THROTTLED_THRESHOLD,
                       "The API answered 429 (throttled) repeatedly: raise the stage throttle "
                       "(sluice:apiThrottleRate / apiThrottleBurst, README \"Capacity\").")
        if alarm_set == FULL_ALARMS:
            self._full(namespace=namespace, functions=functions, table=table,
                       access_log_group=access_log_group, pools=pools)

    def _full(self, *, namespace: str, functions: Mapping[str, lambda_.Function],
              table: dynamodb.ITable, access_log_group: logs.ILogGroup,
              pools: Sequence[PoolQueues]) -> None:
        """The alarms only the full set has (module docstring)."""
        for name, function in functions.items():
            self._at_least(f"{name.capitalize()}Throttles",
                           function.metric_throttles(period=PERIOD, statistic="Sum"),
                           THROTTLES_THRESHOLD,
                           f"Lambda throttled the {name} function: the account's concurrency "
                           "is used up, or the function's reserved concurrency is too low.")
        self._at_least("TableThrottles", cloudwatch.MathExpression(
            expression="reads + writes", label="throttle events", period=PERIOD,
            using_metrics={
                "reads": table.metric("ReadThrottleEvents", statistic="Sum", period=PERIOD),
                "writes": table.metric("WriteThrottleEvents", statistic="Sum", period=PERIOD)}),
            THROTTLES_THRESHOLD,
            "DynamoDB throttled the table (a hot partition, or the account's on-demand "
            "limits); the API answers 503 with Retry-After meanwhile.")
        for pool in pools:
            self._at_least(f"OldestMessage-{pool.pool}",
                           pool.queue.metric_approximate_age_of_oldest_message(
                               period=PERIOD, statistic="Maximum"),
                           OLDEST_MESSAGE_SECONDS,
                           f"A run of pool {pool.pool} has waited over "
                           f"{OLDEST_MESSAGE_SECONDS // 60} minutes for a worker: start workers "
                           "or add slots.")

    def _at_least(self, construct_id: str, metric: cloudwatch.IMetric, threshold: float,
                  description: str) -> None:
        self.alarms.append(cloudwatch.Alarm(
            self, construct_id, metric=metric, threshold=threshold, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # No data means nothing happened: no throttles, an idle queue.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description))

    def dead_letters_by_pool(self) -> cloudwatch.MathExpression:
        """One line per pool (pools created later too) for the dashboard."""
        search = (f"SEARCH('{{\"{self.namespace}\",pool}} MetricName=\"{DEAD_LETTER_MESSAGES}\"'"
                  ", 'Maximum', 300)")
        return cloudwatch.MathExpression(expression=search, label="", period=PERIOD)

"""The CDK app `cdk.json` runs: one stack holding `SluiceControlPlane`, configured by context.

    python -m sluice_infra.app [-c key=value]...   # synth into ./cdk.out (make synth)
    npx aws-cdk@2 deploy -c sluice:alarmEmail=ops@example.com
    npx aws-cdk@2 deploy -c sluice:workerFleet=true -c sluice:extraPools=etl,ml
    npx aws-cdk@2 deploy -c sluice:lambdaPools=quick -c sluice:fargatePools=heavy

Context keys (`-c key=value`, or the "context" of cdk.json) are listed in `CONTEXT_KEYS`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs

import sluice

from .capacity import Capacity, CapacityError
from .construct import SluiceControlPlane
from .lambda_logging import DEFAULT_SYSTEM_LOGS, SYSTEM_LOG_LEVELS
from .operations import ALARM_SETS, ESSENTIAL_ALARMS
from .pools.context import POOL_CONTEXT_KEYS, add_pools, pool_options_from_context
from .upgrades import UPGRADE_CONTEXT_KEYS, upgrade_options_from_context
from .workers import WorkerFleet

DEFAULT_STACK_NAME = "Sluice"
CONTEXT_KEYS = {
    "sluice:stackName": "CloudFormation stack name (default Sluice)",
    "sluice:prefix": "queue/dashboard prefix (default: the stack name, lowercased)",
    "sluice:retentionDays": "days flow runs are kept (default 30)",
    "sluice:eventBusName": "the EventBridge bus Sluice events go to (default: default)",
    "sluice:notificationTopicArns": "SNS topic ARNs automations may notify besides the stack's "
    "own (comma-separated)",
    "sluice:notificationSecrets": "names of the secrets holding automations' webhook URLs and "
    "signing keys (comma-separated)",
    "sluice:extraPools": "comma-separated pools whose queues the stack creates",
    "sluice:logRetentionDays": "log retention in days (default 30)",
    "sluice:alarmEmail": "an address for alarm notifications",
    "sluice:alarms": "essential (default: 6 alarms, under $1 a month idle) or full (18 with one "
                     "pool: adds throttles, 429s, per-function errors, queue age)",
    "sluice:dashboard": "true to create the CloudWatch dashboard (default false: $3 a month "
                        "beyond an account's first three)",
    "sluice:removalPolicy": "retain (default) or destroy: the data on stack delete",
    "sluice:lambdaSystemLogs": "warn (default: no Lambda start/report line per invocation) or "
                               "info (each invocation's duration and memory in the logs)",
    "sluice:workerFleet": "true for an EC2 Auto Scaling worker fleet",
    "sluice:workerPool": "the fleet's pool (default: default)",
    "sluice:workerInstanceType": "the fleet's instance type (default t4g.small)",
    "sluice:workerMinCapacity": "the fleet's minimum size (default 0)",
    "sluice:workerMaxCapacity": "the fleet's maximum size (default 2)",
    "sluice:workerRunsPerInstance": "runs at once per instance (default 4)",
    "sluice:workerSluiceRequirement": "a pip requirement instances install instead of the wheel "
                                      "this app builds (e.g. sluice-flows[worker]==0.1.0)",
    "sluice:workerSluiceWheel": "a sluice-flows wheel file to ship instead of building one",
    "sluice:workerMayTrigger": "deployments (flow/name, comma-separated) the fleet's flows may "
                               "start with run_deployment",
    "sluice:apiThrottleRate": "the API's steady requests per second (default 500)",
    "sluice:apiThrottleBurst": "the API's burst of requests (default 1000)",
    "sluice:apiMemoryMb": "the api function's memory in MB (default 512)",
    "sluice:schedulerMemoryMb": "the scheduler function's memory in MB (default 512)",
    "sluice:monitorMemoryMb": "the monitor function's memory in MB (default 512)",
    "sluice:apiReservedConcurrency": "executions reserved for the api function (default: none)",
    "sluice:schedulerReservedConcurrency": "executions reserved for the scheduler (default 2)",
    "sluice:monitorReservedConcurrency": "executions reserved for the monitor (default 2)",
    "sluice:accountConcurrency": "the account's Lambda concurrency quota (default 1000)",
    **UPGRADE_CONTEXT_KEYS,
    **POOL_CONTEXT_KEYS,
}
#: The context key of each `Capacity` option.
CAPACITY_CONTEXT_KEYS = {
    "api_throttle_rate": "sluice:apiThrottleRate",
    "api_throttle_burst": "sluice:apiThrottleBurst",
    "api_memory_mb": "sluice:apiMemoryMb",
    "scheduler_memory_mb": "sluice:schedulerMemoryMb",
    "monitor_memory_mb": "sluice:monitorMemoryMb",
    "api_reserved_concurrency": "sluice:apiReservedConcurrency",
    "scheduler_reserved_concurrency": "sluice:schedulerReservedConcurrency",
    "monitor_reserved_concurrency": "sluice:monitorReservedConcurrency",
    "account_concurrency": "sluice:accountConcurrency",
}
#: The retention periods CloudWatch Logs accepts (days), as CDK names them.
LOG_RETENTION = {
    1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS, 7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS, 150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS, 545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS, 1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


class ContextError(ValueError):
    """A context value that cannot be used; the message names the key and what it takes."""


class _Context:
    """Typed reads of the app's context: values from `-c` arrive as strings, from cdk.json as
    JSON types; both are accepted."""

    def __init__(self, app: App) -> None:
        self._app = app

    def raw(self, key: str) -> Any:
        assert key in CONTEXT_KEYS, key
        return self._app.node.try_get_context(key)

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        return default if value in (None, "") else str(value)

    def integer(self, key: str, default: int) -> int:
        value = self.raw(key)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ContextError(f"context {key} must be a whole number, not {value!r}") from None

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if isinstance(value, bool) or value is None:
            return bool(value)
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no", ""):
            return False
        raise ContextError(f"context {key} must be true or false, not {value!r}")

    def names(self, key: str) -> list[str]:
        value = self.raw(key)
        if value in (None, ""):
            return []
        items = value if isinstance(value, list) else str(value).split(",")
        return [str(item).strip() for item in items if str(item).strip()]


def build_stack(app: App) -> Stack:
    """The control-plane stack, configured from `app`'s context."""
    context = _Context(app)
    stack_name = context.text("sluice:stackName", DEFAULT_STACK_NAME)
    assert stack_name is not None
    log_days = context.integer("sluice:logRetentionDays", 30)
    if log_days not in LOG_RETENTION:
        raise ContextError(f"context sluice:logRetentionDays must be one of "
                           f"{sorted(LOG_RETENTION)}, not {log_days}")
    removal = (context.text("sluice:removalPolicy", "retain") or "").lower()
    if removal not in ("retain", "destroy"):
        raise ContextError(f"context sluice:removalPolicy must be retain or destroy, "
                           f"not {removal!r}")
    alarms = (context.text("sluice:alarms", ESSENTIAL_ALARMS) or "").lower()
    if alarms not in ALARM_SETS:
        raise ContextError(f"context sluice:alarms must be one of {', '.join(ALARM_SETS)}, "
                           f"not {alarms!r}")
    system_logs = (context.text("sluice:lambdaSystemLogs", DEFAULT_SYSTEM_LOGS) or "").lower()
    if system_logs not in SYSTEM_LOG_LEVELS:
        raise ContextError(f"context sluice:lambdaSystemLogs must be one of "
                           f"{', '.join(SYSTEM_LOG_LEVELS)}, not {system_logs!r}")
    fleet = None
    if context.flag("sluice:workerFleet"):
        wheel = context.text("sluice:workerSluiceWheel")
        fleet = WorkerFleet(
            pool=context.text("sluice:workerPool", "default") or "default",
            instance_type=context.text("sluice:workerInstanceType", "t4g.small") or "t4g.small",
            min_capacity=context.integer("sluice:workerMinCapacity", 0),
            max_capacity=context.integer("sluice:workerMaxCapacity", 2),
            runs_per_instance=context.integer("sluice:workerRunsPerInstance", 4),
            sluice_requirement=context.text("sluice:workerSluiceRequirement"),
            sluice_wheel=Path(wheel) if wheel else None,
            may_trigger=tuple(ref.strip() for ref in
                              (context.text("sluice:workerMayTrigger", "") or "").split(",")
                              if ref.strip()),
        )
    capacity = capacity_from_context(context)
    extra_pools = context.names("sluice:extraPools")
    pool_options = pool_options_from_context(
        context, extra_pools=extra_pools, fleet_pool=fleet.pool if fleet else None,
        error=ContextError)
    stack = Stack(app, stack_name, stack_name=stack_name,
                  description=f"Sluice control plane {sluice.__version__}",
                  env=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                                  region=os.environ.get("CDK_DEFAULT_REGION")))
    control_plane = SluiceControlPlane(
        stack, "ControlPlane",
        prefix=context.text("sluice:prefix", stack_name.lower()) or stack_name.lower(),
        retention_days=context.integer("sluice:retentionDays", 30),
        event_bus_name=context.text("sluice:eventBusName", "default") or "default",
        notification_topic_arns=_listed(context.text("sluice:notificationTopicArns", "")),
        notification_secrets=_listed(context.text("sluice:notificationSecrets", "")),
        extra_pools=[*extra_pools, *pool_options.queue_pools],
        log_retention=LOG_RETENTION[log_days],
        alarm_email=context.text("sluice:alarmEmail"),
        alarms=alarms,
        dashboard=context.flag("sluice:dashboard"),
        lambda_system_logs=system_logs,
        worker_fleet=fleet,
        removal_policy=RemovalPolicy.RETAIN if removal == "retain" else RemovalPolicy.DESTROY,
        capacity=capacity,
        **upgrade_options_from_context(context),
    )
    add_pools(stack, control_plane, pool_options)
    return stack


def capacity_from_context(context: _Context) -> Capacity:
    """`Capacity` from the `sluice:*` capacity keys; a bad value names its key and the fix.
    A reserved concurrency of "none" (or "") leaves that function unreserved."""
    options: dict[str, int | None] = {}
    for option, key in CAPACITY_CONTEXT_KEYS.items():
        value = context.raw(key)
        if value in (None, ""):
            continue
        if option.endswith("_reserved_concurrency") and str(value).lower() == "none":
            options[option] = None
            continue
        options[option] = context.integer(key, 0)
    try:
        return Capacity(**options)
    except CapacityError as error:
        raise ContextError(f"context {CAPACITY_CONTEXT_KEYS[error.option]} "
                           f"{error.problem}") from None


def _listed(text: str | None) -> tuple[str, ...]:
    """A comma-separated context value as its non-empty items."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def cdk_json_context(directory: Path) -> dict[str, Any]:
    """The "context" of `directory/cdk.json`: the CDK CLI passes it in, a plain `python -m`
    run must read it itself."""
    path = directory / "cdk.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()).get("context", {}))


def command_line_context(args: list[str]) -> dict[str, str]:
    """`-c key=value` / `--context key=value` pairs, as the CDK CLI takes them."""
    context: dict[str, str] = {}
    pairs = iter(args)
    for arg in pairs:
        if arg not in ("-c", "--context"):
            raise ContextError(f"unexpected argument {arg!r}; use -c key=value")
        key, sep, value = next(pairs, "").partition("=")
        if not sep or key not in CONTEXT_KEYS:
            raise ContextError(f"-c needs key=value with a key among {', '.join(CONTEXT_KEYS)}")
        context[key] = value
    return context


def main(args: list[str] | None = None) -> int:
    run_by_cdk_cli = "CDK_CONTEXT_JSON" in os.environ
    try:
        if run_by_cdk_cli:
            app = App()
        else:
            context = {**cdk_json_context(Path.cwd()),
                       **command_line_context(sys.argv[1:] if args is None else args)}
            app = App(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"), context=context)
        stack = build_stack(app)
    except ValueError as error:  # a bad option: say which, without a jsii traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    assembly = app.synth()
    if not run_by_cdk_cli:
        print(f"synthesized stack {stack.stack_name} into {assembly.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

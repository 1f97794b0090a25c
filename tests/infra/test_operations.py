"""Operations (issue 18): the alarms an operator is paged by, the saved Logs Insights queries,
capacity as options and context keys, and bytecode in the Lambda asset."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack

from sluice_functions.config import metrics_namespace_for
from sluice_infra import SluiceControlPlane
from sluice_infra import asset as lambda_asset
from sluice_infra.app import CAPACITY_CONTEXT_KEYS, ContextError, build_stack
from sluice_infra.capacity import Capacity, CapacityError, api_requests_per_second
from sluice_infra.log_queries import RUN_ID_PLACEHOLDER
from sluice_infra.operations import (
    API_THROTTLED,
    API_THROTTLED_THRESHOLD,
    DEAD_LETTER_MESSAGES,
    DEAD_MAN_MINUTES,
    OLDEST_MESSAGE_SECONDS,
)

from .conftest import DEFAULT_STACK, FULL_STACK
from .template_reading import refers_to

CONTEXT_STACK = "SluiceSized"
#: The full stack's prefix is "full" (conftest.FULL_CONTEXT).
FULL_NAMESPACE = metrics_namespace_for("full")
KWARGS_STACK = "SluiceKwargs"
SIZED_CONTEXT = {
    "sluice:stackName": CONTEXT_STACK, "sluice:prefix": "sized",
    "sluice:apiThrottleRate": "1500", "sluice:apiThrottleBurst": "3000",
    "sluice:apiMemoryMb": "1024", "sluice:schedulerMemoryMb": "256",
    "sluice:monitorMemoryMb": "2048", "sluice:apiReservedConcurrency": "300",
    "sluice:schedulerReservedConcurrency": "1", "sluice:monitorReservedConcurrency": "none",
    "sluice:accountConcurrency": "2000",
}


def _alarms(synthesized, stack=DEFAULT_STACK) -> dict[str, dict]:
    return {i: a["Properties"] for i, a in
            synthesized.resources("AWS::CloudWatch::Alarm", stack).items()}


def _function_id(template: dict, handler_module: str) -> str:
    (found,) = [i for i, r in template["Resources"].items()
                if r["Type"] == "AWS::Lambda::Function"
                and r["Properties"]["Handler"] == f"sluice_functions.handlers.{handler_module}"
                                                  ".handler"]
    return found


def _functions(template: dict) -> dict[str, dict]:
    return {r["Properties"]["Handler"].split(".")[-2]: r["Properties"]
            for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"}


@pytest.fixture(scope="module")
def sized_templates(tmp_path_factory) -> dict[str, dict]:
    """One synth: a stack sized by context, one by the construct's keyword arguments."""
    app = App(outdir=str(tmp_path_factory.mktemp("sized")), context=SIZED_CONTEXT)
    build_stack(app)
    SluiceControlPlane(Stack(app, KWARGS_STACK), "ControlPlane", prefix="kwargs",
                       capacity=Capacity(api_throttle_rate=750, api_throttle_burst=1500,
                                         api_memory_mb=768, monitor_reserved_concurrency=3))
    assembly = app.synth()
    return {name: assembly.get_stack_by_name(name).template
            for name in (CONTEXT_STACK, KWARGS_STACK)}


# ---- alarms ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tick", ["scheduler", "monitor"])
def test_a_dead_man_alarm_pages_when_a_tick_stops_being_invoked(synthesized, tick):
    function_id = _function_id(synthesized.template(), tick)
    (alarm,) = [a for a in _alarms(synthesized).values()
                if a.get("MetricName") == "Invocations" and refers_to(a["Dimensions"], function_id)]
    assert alarm["Namespace"] == "AWS/Lambda" and alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["Period"] * alarm["EvaluationPeriods"] == DEAD_MAN_MINUTES * 60
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    # A function nobody invokes reports no data at all: that silence is the alarm.
    assert alarm["TreatMissingData"] == "breaching"


def test_only_the_dead_man_alarms_treat_missing_data_as_breaching(synthesized):
    breaching = [a for a in _alarms(synthesized).values() if a["TreatMissingData"] == "breaching"]
    assert len(breaching) == 2
    assert {a.get("MetricName") for a in breaching} == {"Invocations"}


def test_api_429s_are_counted_from_the_access_log_and_alarmed(synthesized):
    # In both alarm sets: the first sign that the capacity is too low for the load.
    assert len(synthesized.resources("AWS::Logs::MetricFilter")) == 1
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage", FULL_STACK).values()
    (log_filter,) = synthesized.resources("AWS::Logs::MetricFilter", FULL_STACK).values()
    properties = log_filter["Properties"]
    # The filter reads the log group the stage writes its access log to.
    assert refers_to(stage["Properties"]["AccessLogSettings"]["DestinationArn"],
                     properties["LogGroupName"]["Ref"])
    assert properties["FilterPattern"] == '{ $.s = "429" }'
    (transformation,) = properties["MetricTransformations"]
    assert (transformation["MetricNamespace"], transformation["MetricName"]) == (
        FULL_NAMESPACE, API_THROTTLED)
    (alarm,) = [a for a in _alarms(synthesized, FULL_STACK).values()
                if a.get("MetricName") == API_THROTTLED]
    assert alarm["Namespace"] == FULL_NAMESPACE
    assert alarm["Threshold"] == API_THROTTLED_THRESHOLD
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_function_has_a_throttle_and_an_error_alarm_in_the_full_set(synthesized):
    alarms = _alarms(synthesized, FULL_STACK).values()
    template = synthesized.template(FULL_STACK)
    for module in _functions(template):
        function_id = _function_id(template, module)
        for metric in ("Throttles", "Errors"):
            matching = [a for a in alarms if a.get("MetricName") == metric
                        and refers_to(a["Dimensions"], function_id)]
            assert len(matching) == 1, (module, metric)
            assert matching[0]["Threshold"] == 1
            assert matching[0]["TreatMissingData"] == "notBreaching"


def test_the_table_throttle_alarm_adds_read_and_write_throttle_events(synthesized):
    (table_id,) = synthesized.resources("AWS::DynamoDB::Table", FULL_STACK)
    table_alarms = [a for a in _alarms(synthesized, FULL_STACK).values()
                    if "Metrics" in a and refers_to(a["Metrics"], table_id)]
    (alarm,) = table_alarms
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert names == {"ReadThrottleEvents", "WriteThrottleEvents"}
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    assert expression == "reads + writes" and alarm["Threshold"] == 1


def test_each_pool_queue_has_an_oldest_message_alarm_in_the_full_set(synthesized):
    # The essential set has none (the dead-letter alarm covers every pool).
    assert not [a for a in _alarms(synthesized).values()
                if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    ages = [a for a in _alarms(synthesized, FULL_STACK).values()
            if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    assert len(ages) == 3
    assert {a["Threshold"] for a in ages} == {OLDEST_MESSAGE_SECONDS}
    assert {a["Statistic"] for a in ages} == {"Maximum"}


def test_one_dead_letter_alarm_watches_the_monitors_total_over_every_pool(synthesized):
    (alarm,) = [a for a in _alarms(synthesized, FULL_STACK).values()
                if a.get("MetricName") == DEAD_LETTER_MESSAGES]
    # No dimension: the total the monitor reports over every pool, created later or not.
    assert alarm["Namespace"] == "Sluice/full" and "Dimensions" not in alarm
    assert alarm["Threshold"] == 1 and alarm["Statistic"] == "Maximum"


def test_the_dashboard_shows_dead_letters_per_pool_by_search(synthesized):
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard", FULL_STACK).values()
    body = str(dashboard["Properties"]["DashboardBody"])
    # Only the per-pool SEARCH names the monitor's gauge: pools created later get a line.
    assert DEAD_LETTER_MESSAGES in body and "pool}" in body


# ---- saved queries ----------------------------------------------------------------------------

def test_the_saved_queries_read_the_right_log_groups(synthesized):
    queries = {q["Properties"]["Name"]: q["Properties"] for q in
               synthesized.resources("AWS::Logs::QueryDefinition").values()}
    assert set(queries) == {"sluice/why did run X fail", "sluice/slowest runs today",
                            "sluice/errors by route", "sluice/throttled requests"}
    why = queries["sluice/why did run X fail"]
    assert f'flow_run_id = "{RUN_ID_PLACEHOLDER}"' in why["QueryString"]
    groups = synthesized.resources("AWS::Logs::LogGroup")
    read = {ref["Ref"] for ref in why["LogGroupNames"]}
    # Every function's log group, the run log group and the API access log.
    function_groups = {i for i in groups if "Functions" in i}
    assert function_groups <= read and len(function_groups) >= 3
    assert any("RunLogs" in i for i in read) and any("ApiAccessLogs" in i for i in read)
    assert "by run" in queries["sluice/slowest runs today"]["QueryString"]
    assert '"429"' in queries["sluice/throttled requests"]["QueryString"]
    assert "by m, family, action, s" in queries["sluice/errors by route"]["QueryString"]


# ---- capacity -------------------------------------------------------------------------------

def test_the_defaults_are_sized_for_a_thousand_runs(synthesized):
    # Twice the steady rate of 1,000 runs, 4 per worker (README "Capacity").
    steady = api_requests_per_second(1_000, 250)
    assert Capacity().api_throttle_rate >= 2 * steady
    (stage,) = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": Capacity().api_throttle_rate,
        "ThrottlingBurstLimit": Capacity().api_throttle_burst}
    functions = _functions(synthesized.template())
    assert functions["scheduler"]["ReservedConcurrentExecutions"] == 2
    assert functions["monitor"]["ReservedConcurrentExecutions"] == 2
    assert "ReservedConcurrentExecutions" not in functions["api"]
    assert {functions[name]["MemorySize"] for name in ("api", "scheduler", "monitor")} == {512}


def test_capacity_from_context_keys(sized_templates):
    template = sized_templates[CONTEXT_STACK]
    (stage,) = [r for r in template["Resources"].values()
                if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": 1500, "ThrottlingBurstLimit": 3000}
    functions = _functions(template)
    assert {name: functions[name]["MemorySize"] for name in ("api", "scheduler", "monitor")} == {
        "api": 1024, "scheduler": 256, "monitor": 2048}
    assert functions["api"]["ReservedConcurrentExecutions"] == 300
    assert functions["scheduler"]["ReservedConcurrentExecutions"] == 1
    assert "ReservedConcurrentExecutions" not in functions["monitor"]


def test_capacity_from_construct_options(sized_templates):
    template = sized_templates[KWARGS_STACK]
    (stage,) = [r for r in template["Resources"].values()
                if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": 750, "ThrottlingBurstLimit": 1500}
    functions = _functions(template)
    assert functions["api"]["MemorySize"] == 768
    assert functions["monitor"]["ReservedConcurrentExecutions"] == 3
    assert functions["scheduler"]["ReservedConcurrentExecutions"] == 2


def test_every_capacity_option_has_a_context_key():
    from dataclasses import fields

    assert {f.name for f in fields(Capacity)} == set(CAPACITY_CONTEXT_KEYS)


@pytest.mark.parametrize(("key", "value", "named"), [
    ("sluice:apiThrottleRate", "fast", "context sluice:apiThrottleRate must be a whole number"),
    ("sluice:apiThrottleRate", "0", "context sluice:apiThrottleRate must be between 1 and"),
    ("sluice:apiThrottleBurst", "6000", "context sluice:apiThrottleBurst must be between 1 and"),
    ("sluice:apiMemoryMb", "64", "context sluice:apiMemoryMb must be between 128 and 10240"),
    ("sluice:monitorMemoryMb", "20000", "context sluice:monitorMemoryMb must be between 128"),
    ("sluice:schedulerReservedConcurrency", "0",
     "context sluice:schedulerReservedConcurrency must be at least 1 .*leave it unset"),
    ("sluice:apiReservedConcurrency", "950",
     "context sluice:apiReservedConcurrency and the ticks' reservations add up to 954"),
    ("sluice:accountConcurrency", "50", "context sluice:accountConcurrency must be at least 100"),
])
def test_bad_capacity_context_fails_synth_naming_the_key(key, value, named):
    with pytest.raises(ContextError, match=named):
        build_stack(App(context={key: value}))


def test_reservations_may_grow_with_the_accounts_quota():
    capacity = Capacity(api_reserved_concurrency=950, account_concurrency=2_000)
    assert capacity.reserved_total == 954
    with pytest.raises(CapacityError, match="raise the account's quota"):
        Capacity(api_reserved_concurrency=950)


# ---- bytecode in the asset ----------------------------------------------------------------------

def _pyc_flags(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[4:8], "little")


def test_compiled_bytecode_is_unchecked_hash_for_the_interpreter_given(tmp_path):
    # Given a package source, When compiled as the asset is
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 1\n")
    lambda_asset.compile_bytecode(tmp_path, sys.executable)
    # Then the pyc is the interpreter's own, hash-based and never checked against the source
    (pyc,) = (tmp_path / "pkg" / "__pycache__").glob("mod.*.pyc")
    assert pyc.name == f"mod.{sys.implementation.cache_tag}.pyc"
    assert _pyc_flags(pyc) == 0b01  # hash-based (bit 0), check_source off (bit 1)
    assert pyc.read_bytes()[:4] == importlib.util.MAGIC_NUMBER


def test_only_an_interpreter_of_the_runtimes_version_compiles(monkeypatch):
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.delenv("SLUICE_LAMBDA_PYTHON", raising=False)
    assert lambda_asset.bytecode_interpreter(here) is not None
    assert lambda_asset.bytecode_interpreter("2.1") is None
    monkeypatch.setenv("SLUICE_LAMBDA_PYTHON", sys.executable)
    assert lambda_asset.bytecode_interpreter(here) == sys.executable
    assert lambda_asset.bytecode_interpreter("2.1") is None  # a wrong version is refused


def test_the_asset_carries_bytecode_of_the_runtimes_python_only(synthesized):
    (function,) = [f for f in synthesized.resources("AWS::Lambda::Function").values()
                   if f["Properties"]["Handler"].endswith("api.handler")]
    digest = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    asset_dir = synthesized.outdir / "default" / f"asset.{digest}"
    runtime_tag = f"cpython-{lambda_asset.LAMBDA_PYTHON_VERSION.replace('.', '')}"
    pycs = list(asset_dir.rglob("*.pyc"))
    # Never another Python's bytecode (this machine's would be dead weight in Lambda).
    assert [p for p in pycs if f".{runtime_tag}." not in p.name] == []
    if lambda_asset.bytecode_interpreter() is None:
        # No Python of the runtime's version on this machine: sources only (README).
        assert pycs == []
        return
    handler = asset_dir / "sluice_functions" / "handlers" / "__pycache__" / f"api.{runtime_tag}.pyc"
    assert handler.exists() and _pyc_flags(handler) == 0b01
    sources = [p for p in asset_dir.rglob("*.py")]
    assert len(pycs) >= 0.95 * len(sources)


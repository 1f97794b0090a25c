"""Issue 20: an idle stack within $1 a month with its alarms. The default stack has the
essential alarm set and no dashboard; `sluice:alarms=full` and `sluice:dashboard=true` (or the
construct's `alarms` / `dashboard` options) add them back."""

from __future__ import annotations

import pytest
from aws_cdk import App

from sluice_infra.app import ContextError, build_stack

from .conftest import DEFAULT_STACK, FULL_STACK

#: CloudWatch's price per alarm metric a month (standard resolution, us-east-1).
ALARM_METRIC_MONTH = 0.10


def _alarm_metrics(alarm: dict) -> int:
    """How many metrics CloudWatch bills the alarm for: each metric a math expression reads."""
    metrics = alarm["Properties"].get("Metrics")
    if metrics is None:
        return 1
    return max(1, sum(1 for metric in metrics if "MetricStat" in metric))


def test_the_default_stack_has_no_dashboard_and_only_the_essential_alarms(synthesized):
    # Given the app with no context (what `cdk deploy` does by default)
    alarms = synthesized.resources("AWS::CloudWatch::Alarm", DEFAULT_STACK)
    # Then there is no dashboard
    assert synthesized.resources("AWS::CloudWatch::Dashboard", DEFAULT_STACK) == {}
    # And the alarms are the essential ones, each a single billed metric
    ids = sorted(logical_id for logical_id in alarms)
    for part in ("SchedulerNotInvoked", "MonitorNotInvoked", "DeadLetters", "CrashedRuns",
                 "ApiServerErrors", "AutomationsDeadLettersAlarm", "ApiThrottled"):
        assert [i for i in ids if part in i], (part, ids)
    assert len(alarms) == 7
    assert sum(_alarm_metrics(a) for a in alarms.values()) * ALARM_METRIC_MONTH <= 0.70 + 1e-9


def test_the_full_set_and_the_dashboard_are_there_when_asked_for(synthesized):
    alarms = synthesized.resources("AWS::CloudWatch::Alarm", FULL_STACK)
    fleet = {i for i, a in alarms.items()
             if "worker fleet" in a["Properties"].get("AlarmDescription", "")}
    # 17 + one oldest-message alarm per pool the stack creates (3 here)
    assert len(alarms) - len(fleet) == 17 + 3
    (_, dashboard) = synthesized.only("AWS::CloudWatch::Dashboard", FULL_STACK)
    assert dashboard["Properties"]["DashboardName"] == "full-control-plane"


@pytest.mark.parametrize(("key", "value", "named"), [
    ("sluice:alarms", "most", "essential, full"),
    ("sluice:dashboard", "maybe", "true or false"),
])
def test_a_bad_alarm_or_dashboard_context_fails_naming_the_key(key, value, named):
    with pytest.raises(ContextError) as raised:
        build_stack(App(context={key: value}))
    assert key in str(raised.value) and named in str(raised.value)

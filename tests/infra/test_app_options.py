"""The app's context and the construct's options: bad values are refused, naming the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, CfnResource, Stack

from sluice_infra import SluiceControlPlane, WorkerFleet
from sluice_infra.app import CONTEXT_KEYS, ContextError, build_stack, command_line_context, main

REPO = Path(__file__).resolve().parents[2]


def test_cdk_json_runs_the_app_with_known_context():
    config = json.loads((REPO / "cdk.json").read_text())
    assert config["app"] == "python -m sluice_infra.app"
    assert set(config.get("context", {})) <= set(CONTEXT_KEYS)


def test_command_line_context_takes_cdk_style_pairs():
    assert command_line_context(["-c", "sluice:alarmEmail=a@b.c", "--context",
                                 "sluice:extraPools=etl,ml"]) == {
        "sluice:alarmEmail": "a@b.c", "sluice:extraPools": "etl,ml"}
    with pytest.raises(ContextError, match="sluice:alarmEmail"):
        command_line_context(["-c", "sluice:alarmEmal=a@b.c"])
    with pytest.raises(ContextError, match="-c key=value"):
        command_line_context(["--fleet"])


@pytest.mark.parametrize(("key", "value", "named"), [
    ("sluice:logRetentionDays", "31", "sluice:logRetentionDays must be one of"),
    ("sluice:removalPolicy", "maybe", "retain or destroy"),
    ("sluice:workerFleet", "perhaps", "true or false"),
    ("sluice:retentionDays", "a month", "sluice:retentionDays must be a whole number"),
])
def test_bad_context_values_are_refused_by_name(key, value, named):
    with pytest.raises(ContextError, match=named):
        build_stack(App(context={key: value}))


def test_main_reports_a_bad_option_without_a_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no cdk.json here, and cdk.out would land here
    monkeypatch.delenv("CDK_CONTEXT_JSON", raising=False)
    assert main(["-c", "sluice:removalPolicy=sometimes"]) == 2
    assert "retain or destroy" in capsys.readouterr().err
    assert not (tmp_path / "cdk.out").exists()


@pytest.mark.parametrize(("options", "named"), [
    ({"prefix": "Sluice_Prod"}, "prefix 'Sluice_Prod' must match"),
    ({"extra_pools": ["ETL"]}, "pool name 'ETL' contains the character 'E'"),
    ({"extra_pools": ["default-dlq"]}, "dead-letter queue of pool 'default'"),
    ({"extra_pools": ["default"]}, "listed twice"),
    ({"worker_fleet": WorkerFleet(pool="etl")}, "worker fleet pool 'etl' has no queue"),
])
def test_the_construct_refuses_bad_options_before_creating_anything(options, named):
    stack = Stack(App(), "Refused")
    with pytest.raises(ValueError, match=named):
        SluiceControlPlane(stack, "ControlPlane", **options)
    assert [c for c in stack.node.find_all() if isinstance(c, CfnResource)] == []


def test_a_fleet_needs_a_sane_size():
    with pytest.raises(ValueError, match="min_capacity <= max_capacity"):
        WorkerFleet(min_capacity=3, max_capacity=2)
    with pytest.raises(ValueError, match="runs_per_instance"):
        WorkerFleet(runs_per_instance=0)

"""Attack: two stacks in one account and region (`sluice` and `sluice-dev`) reading each other's
metrics. Each stack's functions emit into their own CloudWatch namespace, `Sluice/<prefix>`, and
its alarms and dashboard read that namespace only: crashes in dev never page production, and
production's runs never show on dev's dashboard."""

from __future__ import annotations

import json
import os
import re

import pytest
from aws_cdk import App, Stack

from sluice_functions.adapters.aws.emf_metrics import EmfMetrics
from sluice_functions.config import ControlPlaneSettings, metrics_namespace_for
from sluice_infra import SluiceControlPlane

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

PREFIXES = {"Sluice": "sluice", "SluiceDev": "sluice-dev"}
#: Where a namespace appears in an alarm or dashboard: Metrics Insights `FROM "ns"`, SEARCH's
#: `Namespace="ns"` and metric schema `{"ns",dimension}`, and plain metrics' "Namespace".
NAMESPACE_MENTIONS = re.compile(
    r'FROM \\*"(Sluice[^"\\]*)\\*"|Namespace=\\*"(Sluice[^"\\]*)\\*"|\{\\*"(Sluice[^"\\]*)\\*",'
    r'|"Namespace": "(Sluice[^"]*)"')


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, dict]:
    """Both stacks in one app, synthesized once (seconds: the Lambda asset is cached)."""
    app = App(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    for name, prefix in PREFIXES.items():
        # Every alarm and the dashboard (both optional) read a namespace: all of them on.
        SluiceControlPlane(Stack(app, name), "ControlPlane", prefix=prefix, alarms="full",
                           dashboard=True)
    assembly = app.synth()
    return {name: assembly.get_stack_by_name(name).template for name in PREFIXES}


def _resources(template: dict, type_: str) -> list[dict]:
    return [r for r in template["Resources"].values() if r["Type"] == type_]


def _custom_namespaces(resources: list[dict]) -> set[str]:
    text = json.dumps(resources)
    return {next(group for group in match if group)
            for match in NAMESPACE_MENTIONS.findall(text)}


def test_each_stack_has_its_own_namespace():
    assert metrics_namespace_for("sluice") == "Sluice/sluice"
    assert metrics_namespace_for("sluice-dev") == "Sluice/sluice-dev"
    settings = ControlPlaneSettings(stack_prefix="sluice-dev")
    assert settings.effective_metrics_namespace == "Sluice/sluice-dev"


@pytest.mark.parametrize("stack", PREFIXES)
def test_the_functions_emit_into_their_stacks_namespace(templates, stack):
    expected = metrics_namespace_for(PREFIXES[stack])
    functions = _resources(templates[stack], "AWS::Lambda::Function")
    assert len(functions) == 4  # api, scheduler, monitor, automations
    for function in functions:
        environment = function["Properties"]["Environment"]["Variables"]
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == expected
        # What the EMF adapter is built with in Lambda: the settings read from this environment.
        settings = ControlPlaneSettings.model_validate(
            {k: v for k, v in environment.items() if isinstance(v, str)})
        assert settings.effective_metrics_namespace == expected


@pytest.mark.parametrize("stack", PREFIXES)
def test_alarms_and_dashboard_read_their_own_stacks_metrics_only(templates, stack):
    own = metrics_namespace_for(PREFIXES[stack])
    alarms = _resources(templates[stack], "AWS::CloudWatch::Alarm")
    dashboards = _resources(templates[stack], "AWS::CloudWatch::Dashboard")
    # The crashed-runs and skipped-records alarms query the stack's own namespace...
    queries = [m["Expression"] for a in alarms for m in a["Properties"].get("Metrics", [])
               if "Expression" in m and "SELECT" in m["Expression"]]
    assert len(queries) == 2
    assert all(q.endswith(f'FROM "{own}"') for q in queries), queries
    # ...and no alarm or dashboard line reads any other Sluice namespace (another stack's).
    assert _custom_namespaces(alarms) == {own}
    assert _custom_namespaces(dashboards) == {own}


def test_the_emf_adapter_writes_the_namespace_it_is_given(capsys):
    metrics = EmfMetrics("Sluice/sluice-dev")
    metrics.count("CrashedRuns", dimensions={"pool": "etl"})
    metrics.flush()
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Sluice/sluice-dev"

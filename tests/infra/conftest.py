"""One synthesis per test session (synth and bundling take seconds): the app as `cdk.json` runs
it with default context, and a second stack with every option on, checked by cdk-nag too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

DEFAULT_STACK = "Sluice"
FULL_STACK = "SluiceFull"
#: Every option of the app on, different from the defaults.
FULL_CONTEXT = {
    "sluice:stackName": FULL_STACK, "sluice:prefix": "full", "sluice:retentionDays": "14",
    "sluice:extraPools": "etl,ml", "sluice:logRetentionDays": "7",
    "sluice:alarmEmail": "ops@example.com", "sluice:removalPolicy": "destroy",
    "sluice:alarms": "full", "sluice:dashboard": "true",
    "sluice:workerFleet": "true", "sluice:workerPool": "etl",
    "sluice:workerInstanceType": "m7g.large", "sluice:workerMinCapacity": "1",
    "sluice:workerMaxCapacity": "6", "sluice:workerRunsPerInstance": "8",
    "sluice:workerMayTrigger": "etl-flow/nightly",
    # No sluice:workerSluiceRequirement: the fleet ships the wheel built from this tree (the
    # default, checked by cdk-nag here); the requirement is tested without a synth.
}


@dataclass
class Synthesized:
    outdir: Path
    templates: dict[str, dict[str, Any]]
    stacks: dict[str, Any]
    #: cdk-nag AwsSolutionsChecks over the whole app: (rule id, construct path) per finding.
    nag_findings: list[tuple[str, str]]

    def template(self, name: str = DEFAULT_STACK) -> dict[str, Any]:
        return self.templates[name]

    def resources(self, type_: str, name: str = DEFAULT_STACK) -> dict[str, dict[str, Any]]:
        return {logical_id: resource for logical_id, resource
                in self.templates[name]["Resources"].items() if resource["Type"] == type_}

    def only(self, type_: str, name: str = DEFAULT_STACK) -> tuple[str, dict[str, Any]]:
        (item,) = self.resources(type_, name).items()
        return item


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> Synthesized:
    """Both stacks synthesized once; the only session-scoped fixture of the infra tests."""
    from aws_cdk import App
    from cdk_nag import AwsSolutionsChecks

    from sluice_infra.app import build_stack

    outdir = tmp_path_factory.mktemp("cdk.out")
    default_app = App(outdir=str(outdir / "default"))
    full_app = App(outdir=str(outdir / "full"), context=FULL_CONTEXT)
    stacks = {DEFAULT_STACK: build_stack(default_app), FULL_STACK: build_stack(full_app)}
    templates = {}
    findings = []
    for app, name in ((default_app, DEFAULT_STACK), (full_app, FULL_STACK)):
        assembly = app.synth()
        templates[name] = assembly.get_stack_by_name(name).template
        report = AwsSolutionsChecks().validate_scope(app)
        findings += [(violation.rule_name, resource.construct_path)
                     for violation in report.violations
                     for resource in violation.violating_resources]
    return Synthesized(outdir, templates, stacks, findings)

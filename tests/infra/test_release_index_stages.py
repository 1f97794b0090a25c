"""This release's index stages (issue 20): runs-by-deployment, runs-by-flow and runs-by-time stop
projecting `state_type`, so each is deleted and created again, one GSI change per deployment,
starting from exactly the indexes the previous release deployed."""

from __future__ import annotations

import pytest
from aws_cdk import App, RemovalPolicy, Stack

from sluice_functions.config import GLOBAL_INDEXES, RUN_STATE_TYPE
from sluice_infra.storage import create_table, index_stages

#: The table's indexes as the previous release synthesized them: name -> (partition key, sort
#: key, projected attributes). Stage 0 must equal it, or its deployment would change an index.
PREVIOUS_RELEASE = {
    "runs-by-deployment": ("deployment_id", "run_order", ["flow_name", "pool", "state_type"]),
    "runs-by-flow": ("flow_name", "run_order", ["deployment_id", "pool", "state_type"]),
    "runs-by-state": ("state_type", "run_order", ["flow_name", "deployment_id", "pool"]),
    "runs-by-time": ("entity", "run_order",
                     ["flow_name", "deployment_id", "pool", "state_type"]),
}
THIS_RELEASE = {
    "runs-by-deployment": ("deployment_id", "run_order", ["flow_name", "pool"]),
    "runs-by-flow": ("flow_name", "run_order", ["deployment_id", "pool"]),
    "runs-by-state": ("state_type", "run_order", ["flow_name", "deployment_id", "pool"]),
    "runs-by-time": ("entity", "run_order", ["flow_name", "deployment_id", "pool"]),
}


def gsis(template: dict) -> dict[str, tuple[str, str, list[str]]]:
    """The table's indexes in a synthesized template, as in PREVIOUS_RELEASE."""
    (table,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    found = {}
    for gsi in table["Properties"].get("GlobalSecondaryIndexes", []):
        keys = {k["KeyType"]: k["AttributeName"] for k in gsi["KeySchema"]}
        assert gsi["Projection"]["ProjectionType"] == "INCLUDE"
        found[gsi["IndexName"]] = (keys["HASH"], keys["RANGE"],
                                   gsi["Projection"]["NonKeyAttributes"])
    return found


def table_only(indexes) -> dict[str, tuple[str, str, list[str]]]:
    app = App()
    create_table(Stack(app, "Table"), removal_policy=RemovalPolicy.DESTROY, indexes=indexes)
    return gsis(app.synth().get_stack_by_name("Table").template)


def test_the_stages_delete_the_three_indexes_then_create_them_without_the_state():
    # Given this release's stages
    stages = [table_only(stage) for stage in index_stages()]
    # Then stage 0 is exactly what the previous release deployed, the last is this release's
    assert stages[0] == PREVIOUS_RELEASE
    assert stages[-1] == THIS_RELEASE
    # And the three indexes go one per stage, then come back one per stage; runs-by-state
    # (the scheduler's and monitor's) stays throughout
    assert [sorted(stage) for stage in stages] == [
        ["runs-by-deployment", "runs-by-flow", "runs-by-state", "runs-by-time"],
        ["runs-by-flow", "runs-by-state", "runs-by-time"],
        ["runs-by-state", "runs-by-time"],
        ["runs-by-state"],
        ["runs-by-deployment", "runs-by-state"],
        ["runs-by-deployment", "runs-by-flow", "runs-by-state"],
        ["runs-by-deployment", "runs-by-flow", "runs-by-state", "runs-by-time"],
    ]
    for before, after in zip(stages, stages[1:]):
        changed = (before.keys() ^ after.keys()) | {
            name for name in before.keys() & after.keys() if before[name] != after[name]}
        assert len(changed) == 1 and not (before.keys() & after.keys() & changed)
    # And no index of this release holds the state type but the one keyed by it
    assert [i.name for i in GLOBAL_INDEXES if RUN_STATE_TYPE in i.projected_attributes] == []


@pytest.mark.parametrize("stage, expected", [
    ("0", PREVIOUS_RELEASE),
    ("3", {"runs-by-state": PREVIOUS_RELEASE["runs-by-state"]}),
    ("6", THIS_RELEASE),
])
def test_the_app_synthesizes_a_stage_with_its_indexes(tmp_path, stage, expected):
    from sluice_infra.app import build_stack

    # Given the app as `cdk deploy -c sluice:indexStage=<stage>` runs it
    name = f"SluiceStage{stage}"
    app = App(outdir=str(tmp_path), context={"sluice:stackName": name,
                                              "sluice:indexStage": stage})
    build_stack(app)
    # When synthesized
    template = app.synth().get_stack_by_name(name).template
    # Then its table has that stage's indexes
    assert gsis(template) == expected


def test_a_new_stack_gets_this_releases_indexes_at_once(synthesized):
    assert gsis(synthesized.template()) == THIS_RELEASE

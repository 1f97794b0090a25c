"""The stack's part in upgrades and restores: schema version output and environment, the
table-name output, versioned bundle bucket, optional AWS Backup plan, staged index changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from cdk_nag import AwsSolutionsChecks

from sluice import stack_outputs
from sluice_functions.config import (
    ENV_SCHEMA_VERSION,
    GLOBAL_INDEXES,
    PREVIOUS_GLOBAL_INDEXES,
    RUN_STATE_TYPE,
    RUNS_BY_DEPLOYMENT,
    RUNS_BY_FLOW,
    SCHEMA_VERSION,
    GlobalIndex,
    table_key_schema,
)
from sluice_infra.storage import create_table, index_stages, staged_indexes

from .conftest import DEFAULT_STACK


def resources(template, type_):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


@pytest.fixture(scope="module")
def backed_up():
    """The app's stack with the backup plan on (30 days), and cdk-nag's findings over it."""
    from sluice_infra.app import build_stack

    app = App(context={"sluice:stackName": "SluiceBackedUp", "sluice:backupPlan": "true",
                       "sluice:backupRetentionDays": "30"})
    build_stack(app)
    template = app.synth().get_stack_by_name("SluiceBackedUp").template
    report = AwsSolutionsChecks().validate_scope(app)
    findings = [(v.rule_name, r.construct_path) for v in report.violations
                for r in v.violating_resources]
    return template, findings


def test_the_stack_says_which_schema_its_code_understands(synthesized):
    template = synthesized.template(DEFAULT_STACK)
    outputs = template["Outputs"]
    assert outputs[stack_outputs.SCHEMA_VERSION]["Value"] == str(SCHEMA_VERSION)
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    assert outputs[stack_outputs.TABLE_NAME]["Value"] == {"Ref": table_id}
    functions = resources(template, "AWS::Lambda::Function")
    sluice_functions = [f for f in functions.values()
                        if "SLUICE_TABLE_NAME" in f["Properties"].get("Environment", {})
                        .get("Variables", {})]
    assert len(sluice_functions) >= 3
    for function in sluice_functions:
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[ENV_SCHEMA_VERSION] == str(SCHEMA_VERSION)


def test_bundle_bucket_is_versioned_and_old_versions_expire(synthesized):
    _, bucket = synthesized.only("AWS::S3::Bucket")
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in properties["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30


def test_no_backup_plan_by_default_and_pitr_stays_on(synthesized):
    template = synthesized.template(DEFAULT_STACK)
    assert resources(template, "AWS::Backup::BackupPlan") == {}
    _, table = synthesized.only("AWS::DynamoDB::Table")
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True}


def test_the_backup_plan_backs_up_the_table_daily_and_passes_cdk_nag(backed_up):
    template, findings = backed_up
    (plan,) = resources(template, "AWS::Backup::BackupPlan").values()
    (rule,) = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert rule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert rule["Lifecycle"] == {"DeleteAfterDays": 30}
    (selection,) = resources(template, "AWS::Backup::BackupSelection").values()
    (table_id,) = resources(template, "AWS::DynamoDB::Table")
    assert selection["Properties"]["BackupSelection"]["Resources"] == [
        {"Fn::GetAtt": [table_id, "Arn"]}]
    managed = [r for r in resources(template, "AWS::IAM::Role").values()
               if "AWSBackupServiceRolePolicyForBackup" in str(r["Properties"])]
    assert managed == []  # its own narrow role, not the managed policy
    # cdk-nag finds nothing in what the plan adds (the rest of the stack: test_security_checks)
    assert [f for f in findings if "/Upgrades/" in f[1]] == []


def test_a_bad_backup_retention_names_the_option():
    from sluice_infra.app import build_stack

    app = App(context={"sluice:backupPlan": "true", "sluice:backupRetentionDays": "0"})
    with pytest.raises(ValueError, match="retention_days must be 1 to 36500"):
        build_stack(app)


# ---- staged index changes ------------------------------------------------------------------------

#: A change a later release might make: the run filter attributes projected into one index
#: instead of four (the three keyed indexes then hold keys only), and a new pool index.
RUNS_BY_POOL = GlobalIndex("runs-by-pool", "pool", "run_order", projection=(RUN_STATE_TYPE,))
TARGET = (replace(RUNS_BY_DEPLOYMENT, projection=()), replace(RUNS_BY_FLOW, projection=()),
          *GLOBAL_INDEXES[2:], RUNS_BY_POOL)


def synthesized_indexes(indexes) -> dict[str, dict]:
    app = App()
    stack = Stack(app, "Table")
    create_table(stack, removal_policy=RemovalPolicy.DESTROY, indexes=indexes)
    (table,) = resources(app.synth().get_stack_by_name("Table").template,
                         "AWS::DynamoDB::Table").values()
    return {gsi["IndexName"]: gsi
            for gsi in table["Properties"].get("GlobalSecondaryIndexes", [])}


def test_each_stage_changes_exactly_one_index():
    # Given this release's indexes and a target that changes two and adds one
    stages = index_stages(GLOBAL_INDEXES, TARGET)
    synthesized = [synthesized_indexes(stage) for stage in stages]

    # Then the stages start at today's indexes, end at the target, one GSI change apart
    assert len(stages) == 1 + 2 + 3  # two deletes, then three creates
    assert synthesized[-1] == synthesized_indexes(TARGET)
    for before, after in zip(synthesized, synthesized[1:]):
        created = after.keys() - before.keys()
        deleted = before.keys() - after.keys()
        changed = {n for n in before.keys() & after.keys() if before[n] != after[n]}
        assert len(created) + len(deleted) + len(changed) == 1, (before.keys(), after.keys())
        assert not changed  # in place changes are refused by CloudFormation: never staged


def test_the_default_stage_is_this_releases_indexes(synthesized):
    # This release re-creates three indexes without `state_type` (issue 20): 3 deletes, then
    # 3 creates, after stage 0 (the previous release's indexes)
    stages = index_stages()
    assert len(stages) == 7
    assert stages[0] == PREVIOUS_GLOBAL_INDEXES == staged_indexes(0)
    assert staged_indexes(None) == stages[-1] and set(stages[-1]) == set(GLOBAL_INDEXES)
    _, table = synthesized.only("AWS::DynamoDB::Table")
    names = {gsi["IndexName"] for gsi in table["Properties"]["GlobalSecondaryIndexes"]}
    assert names == {gsi["IndexName"] for gsi in table_key_schema()["GlobalSecondaryIndexes"]}


def test_a_stage_that_does_not_exist_names_the_range():
    from sluice_infra.app import build_stack

    with pytest.raises(ValueError, match="index stage 7 does not exist: this release has "
                                         "stages 0 to 6"):
        build_stack(App(context={"sluice:indexStage": "7"}))

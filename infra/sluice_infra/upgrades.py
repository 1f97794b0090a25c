"""What upgrades and restores need from the stack: the schema version its code understands
(an output and an environment variable), the table's name for `sluice admin`, and an optional
AWS Backup plan for the table (point-in-time recovery is always on; docs/operations.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from sluice import stack_outputs
from sluice_functions.config import ENV_SCHEMA_VERSION, SCHEMA_VERSION

from .acknowledgments import acknowledge_wildcard_resources

#: AWS Backup keeps a daily recovery point this long unless told otherwise.
DEFAULT_BACKUP_RETENTION_DAYS = 35
#: Backups start at 03:00 UTC, off the usual working hours of most schedules.
BACKUP_HOUR_UTC = "3"
#: What AWS Backup does to a DynamoDB table (the part of the managed
#: AWSBackupServiceRolePolicyForBackup that concerns DynamoDB), granted on this table only.
TABLE_BACKUP_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:CreateBackup",
                        "dynamodb:ListTagsOfResource", "dynamodb:StartAwsBackupJob")
TABLE_BACKUP_RECOVERY_POINT_ACTIONS = ("dynamodb:DescribeBackup", "dynamodb:DeleteBackup")


@dataclass(frozen=True)
class BackupPlanOptions:
    """A daily AWS Backup of the table, kept `retention_days`."""

    retention_days: int = DEFAULT_BACKUP_RETENTION_DAYS

    def __post_init__(self) -> None:
        if not 1 <= self.retention_days <= 36_500:
            raise ValueError(f"backup retention_days must be 1 to 36500, got "
                             f"{self.retention_days}")


class ControlPlaneUpgrades(Construct):
    """Schema version output + environment, table-name output, optional backup plan."""

    def __init__(self, scope: Construct, construct_id: str, *, table: dynamodb.Table,
                 functions: Iterable[lambda_.Function], backup_plan: BackupPlanOptions | None,
                 removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        for function in functions:
            function.add_environment(ENV_SCHEMA_VERSION, str(SCHEMA_VERSION))
        self._output(stack_outputs.SCHEMA_VERSION, str(SCHEMA_VERSION),
                     "Schema version the functions understand (sluice admin status)")
        self._output(stack_outputs.TABLE_NAME, table.table_name,
                     "The control plane's DynamoDB table (sluice admin migrate, restores)")
        self.backup_plan: backup.BackupPlan | None = None
        if backup_plan is not None:
            self.backup_plan = self._backup_plan(table, backup_plan, removal_policy)

    def _output(self, logical_id: str, value: str, description: str) -> None:
        output = CfnOutput(self, logical_id, value=value, description=description)
        output.override_logical_id(logical_id)  # fixed: `sluice admin` finds it by this name

    def _backup_plan(self, table: dynamodb.Table, options: BackupPlanOptions,
                     removal_policy: RemovalPolicy) -> backup.BackupPlan:
        vault = backup.BackupVault(self, "Vault", removal_policy=removal_policy)
        plan = backup.BackupPlan(self, "Plan", backup_vault=vault)
        plan.add_rule(backup.BackupPlanRule(
            rule_name="daily",
            schedule_expression=events.Schedule.cron(minute="0", hour=BACKUP_HOUR_UTC),
            delete_after=Duration.days(options.retention_days)))
        # Its own role, allowed this table only, instead of the broad AWS-managed policy.
        role = iam.Role(self, "BackupRole",
                        assumed_by=iam.ServicePrincipal("backup.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(actions=list(TABLE_BACKUP_ACTIONS),
                                               resources=[table.table_arn]))
        recovery_points = iam.PolicyStatement(
            actions=list(TABLE_BACKUP_RECOVERY_POINT_ACTIONS),
            resources=[f"{table.table_arn}/backup/*"])
        role.add_to_policy(recovery_points)
        acknowledge_wildcard_resources(
            role, recovery_points,
            "AWS Backup names the table's backups when it takes them; the role reaches the "
            "backups of this one table only.")
        plan.add_selection("Table", resources=[backup.BackupResource.from_dynamo_db_table(table)],
                           role=role, disable_default_backup_policy=True)
        return plan


#: The app's context keys of these options (listed in `sluice_infra.app.CONTEXT_KEYS`).
UPGRADE_CONTEXT_KEYS = {
    "sluice:indexStage": "while a release changes indexes: the stage to deploy, 0 first "
                         "(default: the release's indexes; docs/operations.md)",
    "sluice:backupPlan": "true for a daily AWS Backup plan of the table (default false)",
    "sluice:backupRetentionDays": "days AWS Backup keeps each daily backup "
                                  f"(default {DEFAULT_BACKUP_RETENTION_DAYS})",
}


def upgrade_options_from_context(context) -> dict:  # noqa: ANN001 - the app's typed reader
    """`index_stage` and `backup_plan` for `SluiceControlPlane`, from the app's context."""
    stage = context.raw("sluice:indexStage")
    backup_on = context.flag("sluice:backupPlan")
    return {
        "index_stage": None if stage in (None, "") else context.integer("sluice:indexStage", 0),
        "backup_plan": BackupPlanOptions(retention_days=context.integer(
            "sluice:backupRetentionDays", DEFAULT_BACKUP_RETENTION_DAYS)) if backup_on else None,
    }

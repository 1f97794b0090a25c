"""An optional EC2 Auto Scaling fleet of workers (their IAM policy is in `worker_policy`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from constructs import Construct

from sluice.exceptions import ConfigurationError
from sluice.models import DEFAULT_POOL

from .asset import package_dir
from .storage import PoolQueues
from .worker_wheel import BuiltWheel, refuse_unrelated_distribution, worker_wheel

USER_DATA_SCRIPT = ("sluice_worker", "deploy/ec2-user-data.sh")


@dataclass(frozen=True)
class WorkerFleet:
    """An EC2 Auto Scaling group of Sluice workers for one pool.

    Instances boot with `sluice_worker/deploy/ec2-user-data.sh`: it installs Sluice, writes an
    AWS profile from this stack's outputs and starts the worker's systemd unit. By default
    Sluice is the wheel this CDK app builds from its own sources (`worker_wheel`), shipped as
    an S3 asset and checked against its SHA-256 on the instance: never a name resolved by a
    package index (its dependencies, such as boto3, do come from the index). `sluice_wheel`
    ships a wheel file of your choosing instead; `sluice_requirement` (for example
    `"sluice-flows[worker]==0.1.0"` from your private index) skips the asset and lets pip
    resolve it. A bootstrap that fails powers the instance off, which terminates it: the
    group replaces it rather than keeping an instance that runs nothing.

    The group grows by one instance while runs wait in the pool's queue and shrinks when the
    queue has been empty (nothing waiting or running) for 15 minutes.
    Instances get no inbound access; they call SQS, the API, S3 (the wheel, code bundles) and
    the package index (dependencies) outbound.

    The instances' role has the pool's worker policy (its queue and routes only);
    `may_trigger` names deployments ("flow/name") the pool's flows may start with
    `run_deployment` (`SluiceControlPlane.grant_trigger`).

    `vpc`: where the instances go (default: a new VPC with public subnets only: no NAT gateway,
    so nothing costs money while the group is empty). `runs_per_instance` is the worker's
    `--limit`. The default instance type is Graviton (arm64); any type works, the AMI follows
    its architecture.
    """

    pool: str = DEFAULT_POOL
    instance_type: str = "t4g.small"
    min_capacity: int = 0
    max_capacity: int = 2
    runs_per_instance: int = 4
    sluice_requirement: str | None = None
    sluice_wheel: Path | None = None
    volume_size_gib: int = 20
    vpc: ec2.IVpc | None = None
    may_trigger: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.min_capacity <= self.max_capacity or self.max_capacity < 1:
            raise ValueError("worker fleet: need 0 <= min_capacity <= max_capacity and "
                             f"max_capacity >= 1 (got {self.min_capacity}..{self.max_capacity})")
        if self.runs_per_instance < 1:
            raise ValueError("worker fleet: runs_per_instance must be at least 1")
        if self.sluice_requirement is not None:
            if self.sluice_wheel is not None:
                raise ConfigurationError("worker fleet: give sluice_requirement or sluice_wheel, "
                                         "not both")
            refuse_unrelated_distribution(self.sluice_requirement)
        if self.sluice_wheel is not None:
            BuiltWheel.of(self.sluice_wheel)  # refuses anything but a wheel file


@dataclass(frozen=True)
class ShippedWheel:
    """Where a fleet instance gets the wheel it installs: an `s3://` URL (the asset's, usually
    a token), the wheel's file name (pip needs it) and the SHA-256 the instance checks."""

    s3_url: str
    filename: str
    sha256: str


def worker_user_data(stack_name: str, fleet: WorkerFleet,
                     wheel: ShippedWheel | None = None) -> ec2.UserData:
    """The shipped EC2 user-data script, with this fleet's settings exported before it runs
    (the script reads them with defaults, so it stays usable by hand). It installs `wheel`,
    else `fleet.sluice_requirement`; a failed bootstrap powers the instance off."""
    package, relative = USER_DATA_SCRIPT
    script = (package_dir(package) / relative).read_text()
    shebang, body = script.split("\n", 1)
    settings = {"SLUICE_STACK": stack_name, "SLUICE_POOL": fleet.pool,
                "SLUICE_LIMIT": str(fleet.runs_per_instance),
                "SLUICE_POWER_OFF_ON_FAILURE": "true"}
    if wheel is not None:
        settings |= {"SLUICE_WHEEL_S3_URL": wheel.s3_url, "SLUICE_WHEEL_FILE": wheel.filename,
                     "SLUICE_WHEEL_SHA256": wheel.sha256}
    elif fleet.sluice_requirement is not None:
        settings["SLUICE_REQUIREMENT"] = fleet.sluice_requirement
    else:
        raise ConfigurationError("worker fleet: the user data needs the shipped wheel or "
                                 "fleet.sluice_requirement")
    exports = "\n".join(
        f"export {name}={value if Token.is_unresolved(value) else shlex.quote(value)}"
        for name, value in settings.items())
    return ec2.UserData.custom(f"{shebang}\n# Set by the Sluice CDK worker fleet:\n{exports}\n"
                               f"{body}")


class WorkerFleetGroup(Construct):
    """The Auto Scaling group of `WorkerFleet`, with its scaling on the pool's queue."""

    def __init__(self, scope: Construct, construct_id: str, *, fleet: WorkerFleet,
                 pool: PoolQueues, policy: iam.IManagedPolicy, topic: sns.ITopic,
                 log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, construct_id)
        vpc = fleet.vpc or self._vpc(log_retention)
        instance_type = ec2.InstanceType(fleet.instance_type)
        cpu = (ec2.AmazonLinuxCpuType.ARM_64
               if instance_type.architecture == ec2.InstanceArchitecture.ARM_64
               else ec2.AmazonLinuxCpuType.X86_64)
        security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
            description="Sluice workers: outbound only (SQS, the Sluice API, package index)")
        self.role = role = iam.Role(
            self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[policy], description="Sluice worker instances")
        template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            instance_type=instance_type,
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu),
            user_data=worker_user_data(Stack.of(self).stack_name, fleet,
                                       self._ship_wheel(fleet, role)),
            role=role,
            security_group=security_group,
            require_imdsv2=True,
            # The user data powers off an instance whose bootstrap failed: it goes away and
            # the group launches a fresh one, instead of counting it as a worker.
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
            block_devices=[ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(fleet.volume_size_gib, encrypted=True,
                                                 volume_type=ec2.EbsDeviceVolumeType.GP3))],
        )
        self.group = autoscaling.AutoScalingGroup(
            self, "Group", vpc=vpc, launch_template=template,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
            if fleet.vpc is None else None,
            min_capacity=fleet.min_capacity, max_capacity=fleet.max_capacity,
            notifications=[autoscaling.NotificationConfiguration(topic=topic)],
        )
        # Instances boot only once the role may read the wheel (its default policy).
        self.group.node.add_dependency(role)
        self._scale_on_queue(pool)

    def _ship_wheel(self, fleet: WorkerFleet, role: iam.IRole) -> ShippedWheel | None:
        """The wheel instances install, as an S3 asset `role` may read (None when the fleet
        installs `sluice_requirement` instead)."""
        if fleet.sluice_requirement is not None:
            return None
        built = BuiltWheel.of(fleet.sluice_wheel) if fleet.sluice_wheel else worker_wheel()
        asset = s3_assets.Asset(self, "SluiceWheel", path=str(built.path))
        # This one object: `Asset.grant_read` would open the whole CDK assets bucket (every
        # asset of every stack in the account and region) to the instances.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[asset.bucket.arn_for_objects(asset.s3_object_key)]))
        return ShippedWheel(s3_url=asset.s3_object_url, filename=built.filename,
                            sha256=built.sha256)

    def _vpc(self, log_retention: logs.RetentionDays) -> ec2.Vpc:
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention,
                                  removal_policy=RemovalPolicy.DESTROY)
        return ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(
                name="workers", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)],
            # Rejected traffic only: nothing should try to reach the workers, and accepted
            # traffic (pip, SQS, the API) would only add ingestion cost.
            flow_logs={"rejected": ec2.FlowLogOptions(
                traffic_type=ec2.FlowLogTrafficType.REJECT,
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))},
        )

    def _scale_on_queue(self, pool: PoolQueues) -> None:
        minute = Duration.minutes(1)
        waiting = pool.queue.metric_approximate_number_of_messages_visible(
            period=minute, statistic="Maximum")
        busy = cloudwatch.MathExpression(
            expression="waiting + running + delayed", period=minute, using_metrics={
                "waiting": waiting,
                "running": pool.queue.metric_approximate_number_of_messages_not_visible(
                    period=minute, statistic="Maximum"),
                "delayed": pool.queue.metric_approximate_number_of_messages_delayed(
                    period=minute, statistic="Maximum")})
        # Runs waiting two minutes in a row: the instances are all busy (or none is up).
        self._step(
            "ScaleOut", waiting, threshold=1, periods=2, adjustment=1,
            operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # An instance needs a few minutes to boot and install Sluice before it takes runs;
            # while one warms up, a still-breaching alarm does not add another.
            warmup=Duration.minutes(5))
        # Nothing waiting, delayed or running for 15 minutes: an instance can go. Instances
        # that run flows hold their messages in flight, so this never stops a running run.
        self._step(
            "ScaleIn", busy, threshold=0, periods=15, adjustment=-1,
            operator=cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD)

    def _step(self, name: str, metric: cloudwatch.IMetric, *, threshold: float, periods: int,
              adjustment: int, operator: cloudwatch.ComparisonOperator,
              warmup: Duration | None = None) -> None:
        action = autoscaling.StepScalingAction(
            self, f"{name}Action", auto_scaling_group=self.group,
            estimated_instance_warmup=warmup,
            adjustment_type=autoscaling.AdjustmentType.CHANGE_IN_CAPACITY)
        if adjustment > 0:
            action.add_adjustment(adjustment=adjustment, lower_bound=0)
        else:
            action.add_adjustment(adjustment=adjustment, upper_bound=0)
        alarm = cloudwatch.Alarm(
            self, f"{name}Alarm", metric=metric, threshold=threshold,
            evaluation_periods=periods, comparison_operator=operator,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"Sluice worker fleet: {name}")
        alarm.add_alarm_action(cloudwatch_actions.AutoScalingAction(action))

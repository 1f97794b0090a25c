"""An optional EC2 Auto Scaling fleet of workers (their IAM policy is in `worker_policy`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

import sluice
from sluice.models import DEFAULT_POOL

from .asset import package_dir
from .storage import PoolQueues

USER_DATA_SCRIPT = ("sluice_worker", "deploy/ec2-user-data.sh")


@dataclass(frozen=True)
class WorkerFleet:
    """An EC2 Auto Scaling group of Sluice workers for one pool.

    Instances boot with `sluice_worker/deploy/ec2-user-data.sh`: it installs
    `sluice_requirement`, writes an AWS profile from this stack's outputs and starts the
    worker's systemd unit. The group grows by one instance while runs wait in the pool's queue
    and shrinks when the queue has been empty (nothing waiting or running) for 15 minutes.
    Instances get no inbound access; they call SQS, the API and the package index outbound.

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
    sluice_requirement: str = f"sluice[worker]=={sluice.__version__}"
    volume_size_gib: int = 20
    vpc: ec2.IVpc | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_capacity <= self.max_capacity or self.max_capacity < 1:
            raise ValueError("worker fleet: need 0 <= min_capacity <= max_capacity and "
                             f"max_capacity >= 1 (got {self.min_capacity}..{self.max_capacity})")
        if self.runs_per_instance < 1:
            raise ValueError("worker fleet: runs_per_instance must be at least 1")


def worker_user_data(stack_name: str, fleet: WorkerFleet) -> ec2.UserData:
    """The shipped EC2 user-data script, with this fleet's settings exported before it runs
    (the script reads them with defaults, so it stays usable by hand)."""
    package, relative = USER_DATA_SCRIPT
    script = (package_dir(package) / relative).read_text()
    shebang, body = script.split("\n", 1)
    settings = {"SLUICE_STACK": stack_name, "SLUICE_POOL": fleet.pool,
                "SLUICE_LIMIT": str(fleet.runs_per_instance),
                "SLUICE_VERSION": fleet.sluice_requirement}
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
        role = iam.Role(self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                        managed_policies=[policy], description="Sluice worker instances")
        template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            instance_type=instance_type,
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu),
            user_data=worker_user_data(Stack.of(self).stack_name, fleet),
            role=role,
            security_group=security_group,
            require_imdsv2=True,
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
        self._scale_on_queue(pool)

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
